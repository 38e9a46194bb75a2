"""Where the checkout's parts are, for tests: one definition instead of a ``parents[N]`` per file
(tests live at different depths, mirroring the rooms)."""

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
TESTS_DIR = REPO_ROOT / "tests"
EVENTS_DIR = TESTS_DIR / "events"
EXAMPLES_DIR = REPO_ROOT / "examples"
