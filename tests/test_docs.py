"""The docs that are generated or bounded: docs/config.md is the code's own reference, and the
README stays a front door."""

import re
from pathlib import Path

import yaml

from comp.config import dump_config
from comp.config_reference import config_reference, field_comments
from comp.kinds import default_config

ROOT = Path(__file__).resolve().parents[1]


def flat_keys(values: dict, prefix: str = "") -> list[str]:
    keys = []
    for key, value in values.items():
        name = f"{prefix}{key}"
        keys += flat_keys(value, name + ".") if isinstance(value, dict) else [name]
    return keys


def test_docs_config_md_is_what_show_config_docs_writes():
    expected = config_reference(default_config())
    actual = (ROOT / "docs" / "config.md").read_text(encoding="utf-8")
    assert actual == expected, "docs/config.md is stale: run `make docs`"


def test_the_reference_names_every_key_show_config_prints():
    reference = config_reference(default_config())
    keys = flat_keys(yaml.safe_load(dump_config(default_config())))
    assert len(keys) > 100
    missing = [key for key in keys if f"| `{key}` |" not in reference]
    assert not missing, missing


def test_field_comments_follow_their_fields():
    from dataclasses import dataclass

    @dataclass
    class Example:
        a: int = 1  # first line
        # and its continuation
        b: str = "#"

        # a block of its own
        # about c
        c: int = 3  # and c's own

    assert field_comments(Example) == {
        "a": "first line and its continuation",
        "b": "",
        "c": "a block of its own about c and c's own",
    }


def test_the_readme_is_a_front_door():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 200
    assert "make all" in readme and "make test" in readme
    for link in re.findall(r"\]\((docs/[^)#]+)", readme):
        assert (ROOT / link).is_file(), link
