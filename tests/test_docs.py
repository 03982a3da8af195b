"""The docs stay true: generated tables equal what generates them, and every file the
README links to exists (``mkdocs build --strict`` checks the links inside docs/)."""

from __future__ import annotations

import re

import yaml

from bidsport import config_reference
from helpers import REPO


def test_configuration_reference_is_generated_from_the_schema():
    page = (REPO / "docs" / "configuration.md").read_text(encoding="utf-8")
    begin, end = config_reference.BEGIN + "\n", config_reference.END
    assert begin in page and end in page, "docs/configuration.md lost its generated table markers"
    assert page.split(begin, 1)[1].split(end, 1)[0] == config_reference.table()


def test_every_schema_key_is_in_the_reference():
    schema = yaml.safe_load(config_reference.schema_path().read_text(encoding="utf-8"))
    text = config_reference.table(schema)
    assert [line.split("`")[1] for line in text.splitlines()[2:]] == list(schema["properties"])
    required = [line.split("`")[1] for line in text.splitlines()[2:] if "| required |" in line]
    assert required == schema["required"]


def test_readme_links_exist_and_it_stays_short():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    links = [target.split("#")[0] for target in re.findall(r"\]\(([^)\s]+)\)", readme) if "://" not in target]
    assert links and [link for link in links if link and not (REPO / link).exists()] == []
    assert len(readme.splitlines()) < 150


def test_every_docs_page_is_in_the_nav():
    config = yaml.safe_load((REPO / "mkdocs.yml").read_text(encoding="utf-8"))

    def pages(nav):
        for item in nav:
            value = next(iter(item.values())) if isinstance(item, dict) else item
            yield from pages(value) if isinstance(value, list) else [value]

    listed = set(pages(config["nav"]))
    present = {str(p.relative_to(REPO / "docs")) for p in (REPO / "docs").rglob("*.md")}
    assert present == listed
