"""The screenshots docs/ui.md shows, and what each of them shows.

A screenshot's pixels change with every run (times, run ids, temporary paths); what it shows does not.
So the browser test records, per screenshot, the facts it asserted on that screen (the page, the asset,
texts and labels present, pictures loaded) and compares them with the committed docs/ui/screens.json:
when they differ, the committed screenshots no longer show what the UI shows, and the test fails until
both are refreshed with SEGPIPE_UPDATE_SCREENSHOTS=1. The PNGs in docs/ui/ are rewritten only then;
every run leaves its fresh ones in .segpipe/test-artifacts/ui/ to look at.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any

from PIL import Image

from segpipe_tests.dagster_dev_server import REPO_ROOT

UPDATE_ENV = "SEGPIPE_UPDATE_SCREENSHOTS"
SCREENS_DIR = REPO_ROOT / "docs" / "ui"
FACTS_FILE = SCREENS_DIR / "screens.json"
FRESH_DIR = REPO_ROOT / ".segpipe" / "test-artifacts" / "ui"
VIEWPORT = {"width": 1280, "height": 800}
MAX_PNG_BYTES = 150_000
PALETTE_COLOURS = 256  # a UI screenshot has few colours; a palette PNG is a third of the RGB one's size
REFRESH = (f"re-run `{UPDATE_ENV}=1 .venv/bin/pytest -n 0 segpipe_tests/e2e/test_ui_materialize.py` to rewrite "
           f"docs/ui/*.png and docs/ui/screens.json, look at the new pictures, and update docs/ui.md if they "
           f"tell a different story")


def updating() -> bool:
    return os.environ.get(UPDATE_ENV, "") == "1"


def optimised_png(screenshot: bytes) -> bytes:
    """The screenshot as a palette PNG: small enough to commit, sharp enough to read."""
    image = Image.open(io.BytesIO(screenshot)).convert("RGB")
    out = io.BytesIO()
    image.quantize(colors=PALETTE_COLOURS, method=Image.Quantize.FASTOCTREE).save(out, "PNG", optimize=True)
    return out.getvalue()


class ScreenBook:
    """The screenshots of one walk through the UI, in the order docs/ui.md shows them, with their facts."""

    def __init__(self) -> None:
        self.facts: dict[str, dict[str, Any]] = {}
        self.pngs: dict[str, bytes] = {}

    def record(self, name: str, screenshot: bytes, **facts: Any) -> None:
        png = optimised_png(screenshot)
        assert len(png) <= MAX_PNG_BYTES, f"screenshot {name} is {len(png)} bytes, over {MAX_PNG_BYTES}"
        assert name not in self.facts, f"screenshot {name} recorded twice"
        self.facts[name] = {"file": f"{name}.png", **facts}
        self.pngs[name] = png

    def document(self) -> dict[str, Any]:
        return {"viewport": VIEWPORT, "screens": list(self.facts.values())}

    def settle(self) -> None:
        """Write the fresh screenshots for inspection; in update mode also into docs/ui/ with their facts;
        otherwise fail when the committed facts or files differ from what was just seen."""
        write_screens(FRESH_DIR, self.pngs, self.document())
        if updating():
            write_screens(SCREENS_DIR, self.pngs, self.document())
            return
        if not FACTS_FILE.is_file():
            raise AssertionError(f"{FACTS_FILE.relative_to(REPO_ROOT)} is missing: {REFRESH}")
        problems = differences(json.loads(FACTS_FILE.read_text()), self.document())
        problems += [f"{name}.png is missing from docs/ui/" for name in self.pngs
                     if not (SCREENS_DIR / f"{name}.png").is_file()]
        assert not problems, ("the committed UI screenshots no longer show what the UI shows:\n- "
                              + "\n- ".join(problems) + f"\nFresh ones are in {FRESH_DIR}; {REFRESH}.")


def write_screens(folder: Path, pngs: dict[str, bytes], document: dict[str, Any]) -> None:
    """The PNGs and screens.json into `folder`, removing PNGs of screens that are gone."""
    folder.mkdir(parents=True, exist_ok=True)
    for stale in set(folder.glob("*.png")) - {folder / f"{name}.png" for name in pngs}:
        stale.unlink()
    for name, png in pngs.items():
        (folder / f"{name}.png").write_bytes(png)
    (folder / FACTS_FILE.name).write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n")


def differences(committed: dict[str, Any], fresh: dict[str, Any]) -> list[str]:
    """What the fresh walk saw that the committed facts do not say, screen by screen and fact by fact."""
    problems = []
    if committed.get("viewport") != fresh["viewport"]:
        problems.append(f"viewport: committed {committed.get('viewport')}, now {fresh['viewport']}")
    old = {screen["file"]: screen for screen in committed.get("screens", [])}
    new = {screen["file"]: screen for screen in fresh["screens"]}
    problems += [f"{file}: committed but no longer taken" for file in old if file not in new]
    problems += [f"{file}: taken but not committed" for file in new if file not in old]
    for file in (file for file in new if file in old):
        for fact in sorted(old[file].keys() | new[file].keys()):
            if old[file].get(fact) != new[file].get(fact):
                problems.append(f"{file}: {fact} committed as {old[file].get(fact)!r}, now {new[file].get(fact)!r}")
    if [f for f in old if f in new] != [f for f in new if f in old]:
        problems.append(f"order: committed {list(old)}, now {list(new)}")
    return problems
