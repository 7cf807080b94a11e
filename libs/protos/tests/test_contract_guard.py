"""The v1 contract guard (scripts/proto_contract.sh) run for real with buf on
a copy of proto/: it passes the tree as recorded, fails a breaking change
(with the reason), and fails a compatible change not yet recorded."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
HOLD = "message HoldSlotRequest {\n  string slot_id = 1;\n  string idempotency_key = 2;\n}"


def copy_of_the_tree(tmp_path: Path) -> Path:
    (tmp_path / "scripts").mkdir()
    shutil.copy2(ROOT / "scripts" / "proto_contract.sh", tmp_path / "scripts")
    shutil.copytree(ROOT / "proto", tmp_path / "proto")
    return tmp_path


def check(tree: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(tree / "scripts" / "proto_contract.sh"), "check"],
                          capture_output=True, text=True, timeout=300)


def edit_registration(tree: Path, new: str) -> None:
    proto = tree / "proto" / "tuoguan" / "registration" / "v1" / "registration.proto"
    text = proto.read_text()
    assert HOLD in text, "the test's anchor moved: update HOLD"
    proto.write_text(text.replace(HOLD, new))


def test_the_tree_as_recorded_passes(tmp_path):
    result = check(copy_of_the_tree(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "no breaking change" in result.stdout


def test_a_field_removed_or_renumbered_fails_as_breaking(tmp_path):
    tree = copy_of_the_tree(tmp_path)
    edit_registration(tree, "message HoldSlotRequest {\n  string slot_id = 1;\n  string idempotency_key = 3;\n}")
    result = check(tree)
    assert result.returncode == 1
    assert "breaks the v1 contract" in result.stderr
    assert "HoldSlotRequest" in result.stdout + result.stderr


def test_a_compatible_addition_must_be_recorded(tmp_path):
    tree = copy_of_the_tree(tmp_path)
    edit_registration(tree, HOLD.replace("}", "  string channel = 3;\n}"))
    result = check(tree)
    assert result.returncode == 1
    assert "run scripts/proto_contract.sh record" in result.stderr
    recorded = subprocess.run(["bash", str(tree / "scripts" / "proto_contract.sh"), "record"],
                              capture_output=True, text=True, timeout=300)
    assert recorded.returncode == 0, recorded.stderr
    assert check(tree).returncode == 0
