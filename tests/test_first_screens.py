"""What a new user reads first stays true: `make help` lists every target,
`make up`'s banner names every demo account and where the codes are, the
README names every process's log prefix and no stale count of alerts."""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

import yaml
from identity.seed import DEMO_PATIENTS, DEMO_STAFF

REPO = Path(__file__).resolve().parents[1]


def phony_targets() -> set[str]:
    text = (REPO / "Makefile").read_text().replace("\\\n", " ")
    (line,) = re.findall(r"^\.PHONY:(.*)$", text, flags=re.M)
    return set(line.split())


def banner() -> str:
    script = (REPO / "scripts" / "up.sh").read_text()
    return re.search(r"<<'BANNER'\n(.*?)\nBANNER", script, flags=re.S).group(1)


def procfile_names() -> list[str]:
    return [line.split(":", 1)[0] for line in (REPO / "Procfile").read_text().splitlines()
            if ":" in line and not line.startswith("#")]


def test_make_help_lists_every_target_with_a_line_of_its_own():
    out = subprocess.run(["make", "--no-print-directory", "help"], cwd=REPO, capture_output=True, text=True,
                         check=True).stdout
    listed = dict(re.findall(r"^\s+make (\S+)\s+(\S.*)$", out, flags=re.M))
    assert set(listed) == phony_targets()


def test_the_banner_names_every_demo_account_and_where_the_codes_are():
    text = banner()
    for login, password, *_ in DEMO_PATIENTS[:1] + DEMO_STAFF:
        assert re.search(rf"\b{re.escape(login)}\b", text), login
        assert password in text, login
    assert "sign-up" in text.lower() and "identity-api log" in text
    # Addresses that answer, not a bare prefix (/api/v1 alone is 404).
    assert not re.search(r"/api/v1(\s|$)", text)


def test_the_readme_names_every_process_s_log_prefix():
    readme = (REPO / "README.md").read_text()
    sentence = re.search(r"prefixed by its\s+name and instance, as honcho writes them \((.*?)\)", readme,
                         flags=re.S).group(1)
    assert sorted(re.findall(r"`([\w-]+)\.1`", sentence)) == sorted(procfile_names())


def test_the_readme_counts_no_alerts_or_counts_them_right():
    rules = (REPO / "observability" / "prometheus" / "rules").glob("*.yml")
    alerts = sum(1 for path in rules for group in yaml.safe_load(path.read_text())["groups"]
                 for rule in group["rules"] if "alert" in rule)
    readme = " ".join((REPO / "README.md").read_text().split())
    for count in re.findall(r"(\d+) alerts\b", readme):
        assert int(count) == alerts
