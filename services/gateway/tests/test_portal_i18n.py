"""The portal's languages: the catalogues keep up with the code (the drift
check), the language a request gets, and Babel's formatting of money, dates
and times in the hospital's time zone."""
from __future__ import annotations

import datetime as dt
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog
from babel.messages.pofile import read_po

from gateway.portal import i18n
from gateway.portal.i18n import DEFAULT_LANGUAGE, Formatter, choose_language

GATEWAY = Path(__file__).resolve().parents[1]
LOCALE = GATEWAY / "src" / "gateway" / "portal" / "locale"
REPO = GATEWAY.parents[1]


# ---- the catalogues against the code -------------------------------------------------------------

@pytest.fixture(scope="module")
def extracted(tmp_path_factory) -> Catalog:
    """The texts in the code and templates today, extracted as scripts/i18n.sh does."""
    assert (REPO / "scripts" / "i18n.sh").is_file()
    pot = tmp_path_factory.mktemp("i18n") / "messages.pot"
    done = subprocess.run(
        [sys.executable, "-m", "babel.messages.frontend", "extract", "-F", "babel.cfg",
         "-k", "N_", "-k", "_", "-k", "translate:2", "--no-location", "--sort-output", "-w", "120",
         "--project", "Tuoguan portal", "-o", str(pot), "."],
        cwd=GATEWAY, capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        pytest.fail(f"pybabel extract failed ({done.returncode}):\n{done.stderr}", pytrace=False)
    with pot.open("rb") as f:
        catalog = read_po(f)
    assert len([m for m in catalog if m.id]) > 100, "the extraction found too few texts: is babel.cfg right?"
    return catalog


def catalogue(language: str) -> Catalog:
    with (LOCALE / language / "LC_MESSAGES" / "messages.po").open("rb") as f:
        return read_po(f, locale=language)


def ids(catalog: Catalog) -> set:
    return {m.id for m in catalog if m.id}


def strings(value) -> tuple[str, ...]:
    """A message's id or string as a tuple (plural forms have several)."""
    return tuple(value) if isinstance(value, (tuple, list)) else (value,)


def test_the_languages_have_catalogues():
    assert set(i18n.LANGUAGES) == {p.name for p in LOCALE.iterdir() if (p / "LC_MESSAGES" / "messages.po").is_file()}
    assert DEFAULT_LANGUAGE == "zh_CN"


def test_every_text_in_the_code_has_a_chinese_translation(extracted):
    zh = catalogue("zh_CN")
    entries = {m.id: m for m in zh if m.id}
    missing = sorted(str(m) for m in ids(extracted) - set(entries))
    assert not missing, f"texts not in zh_CN/messages.po (run scripts/i18n.sh, then translate): {missing}"
    untranslated = sorted(str(m.id) for m in zh if m.id and not all(s.strip() for s in strings(m.string)))
    assert not untranslated, f"zh_CN texts without a translation: {untranslated}"
    fuzzy = sorted(str(m.id) for m in zh if m.id and m.fuzzy)
    assert not fuzzy, f"zh_CN translations marked fuzzy (not used until reviewed): {fuzzy}"


def test_the_english_catalogue_lists_every_text(extracted):
    missing = sorted(str(m) for m in ids(extracted) - ids(catalogue("en")))
    assert not missing, f"texts not in en/messages.po (run scripts/i18n.sh): {missing}"


@pytest.mark.parametrize("language", sorted(i18n.LANGUAGES))
def test_no_catalogue_keeps_texts_the_code_no_longer_has(extracted, language):
    po = catalogue(language)
    stale = sorted(str(m) for m in ids(po) - ids(extracted))
    assert not stale, f"{language}/messages.po has texts the code no longer uses (run scripts/i18n.sh): {stale}"
    assert not po.obsolete, f"{language}/messages.po keeps obsolete (#~) entries: {sorted(map(str, po.obsolete))}"


# %(name)s, %s, {name}, {}: what str.format / %-formatting / Jinja's gettext fill in. %% and {{ }} are literal.
PLACEHOLDER = re.compile(r"%%|\{\{|\}\}|%(?:\((\w+)\))?[#0 +\-]*\d*(?:\.\d+)?[diouxXeEfFgGcrsa]|\{(\w*)[^{}]*\}")


def placeholders(text: str) -> Counter:
    found = Counter()
    for match in PLACEHOLDER.finditer(text):
        if match.group(0) in ("%%", "{{", "}}"):
            continue
        found[match.group(0) if match.group(1) is None and match.group(2) is None
              else (match.group(1) or match.group(2))] += 1
    return found


def test_the_placeholder_pattern():
    assert placeholders("%(n)s of %(capacity)s left") == Counter({"n": 1, "capacity": 1})
    assert placeholders("Booking {number} checked in.") == Counter({"number": 1})
    assert placeholders("100%% sure, {{ not }} a placeholder") == Counter()


@pytest.mark.parametrize("language", sorted(i18n.LANGUAGES))
def test_translations_keep_the_placeholders(language):
    po = catalogue(language)
    wrong = []
    for message in po:
        if not message.id:
            continue
        expected = placeholders(strings(message.id)[0])
        for translated in strings(message.string):
            if translated and placeholders(translated) != expected:
                wrong.append(f"{message.id!r} -> {translated!r}")
        if placeholders(strings(message.id)[0]) and "{" not in strings(message.id)[0]:
            assert message.python_format, f"{message.id!r} has %-placeholders but no python-format flag"
    assert not wrong, f"{language} translations whose placeholders differ from the text's: {wrong}"
    # Babel's own checks (python-format and the like).
    problems = [(m.id, [str(e) for e in errors]) for m, errors in po.check()]
    assert not problems, problems


def test_the_compiled_catalogue_is_the_po_file():
    zh = catalogue("zh_CN")
    compiled = i18n.translations("zh_CN")
    for message in zh:
        if message.id and not message.pluralizable:
            # A message with a context ("Open" of tickets, not of a doctor's session) is read with it.
            found = compiled.pgettext(message.context, message.id) if message.context else \
                compiled.gettext(message.id)
            assert found == message.string, (message.context, message.id)


def test_every_reason_is_in_chinese():
    zh, en = i18n.translations("zh_CN").gettext, i18n.translations("en").gettext
    assert i18n.REASONS, "no reason codes"
    for code, english in {**i18n.REASONS, "general": i18n.GENERAL_REFUSAL}.items():
        chinese = zh(english)
        assert chinese.strip() and chinese != english, f"{code}: {english!r} has no Chinese translation"
        assert re.search(r"[\u4e00-\u9fff]", chinese), f"{code}: {chinese!r} is not Chinese"
        assert en(english) == english


@pytest.mark.parametrize("table", ["PERIODS", "TITLES", "BOOKING_STATUSES", "SESSION_STATUSES", "WEEKDAYS"])
def test_the_labels_are_in_chinese(table):
    zh = i18n.translations("zh_CN").gettext
    for english in getattr(i18n, table).values():
        assert re.search(r"[\u4e00-\u9fff]", zh(english)), f"{table}: {english!r}"


# ---- the language of a request -------------------------------------------------------------------

@pytest.mark.parametrize(("requested", "remembered", "accept", "expected"), [
    # An explicit ?lang= beats the remembered choice, which beats the browser's.
    ("en", "zh_CN", "zh-CN", "en"),
    ("zh_CN", "en", "en-US,en;q=0.9", "zh_CN"),
    (None, "en", "zh-CN,zh;q=0.9", "en"),
    (None, "zh_CN", "en-US,en;q=0.9", "zh_CN"),
    # The browser's, when nothing was chosen.
    (None, None, "en-US,en;q=0.9", "en"),
    (None, None, "en", "en"),
    (None, None, "en-GB", "en"),
    (None, None, "fr-FR,en;q=0.5", "en"),
    (None, None, "zh-CN,zh;q=0.9,en;q=0.8", "zh_CN"),
    (None, None, "zh-TW", "zh_CN"),
    (None, None, "zh-HK,en;q=0.9", "zh_CN"),
    (None, None, "zh;q=0.5", "zh_CN"),
    (None, None, "fr-FR,zh;q=0.5", "zh_CN"),
    # Chinese otherwise.
    (None, None, "fr-FR", DEFAULT_LANGUAGE),
    (None, None, None, DEFAULT_LANGUAGE),
    (None, None, "", DEFAULT_LANGUAGE),
    # Bogus values are ignored.
    ("xx", None, "en-US", "en"),
    ("EN", "<script>", None, DEFAULT_LANGUAGE),
    ("zh-CN", "english", "en", "en"),
    ("", "", "*", DEFAULT_LANGUAGE),
    (None, None, ";;,,q=1", DEFAULT_LANGUAGE),
    (None, None, "\u00e9\u00e9;q=abc,en", "en"),
])
def test_choose_language(requested, remembered, accept, expected):
    assert choose_language(requested, remembered, accept) == expected


@pytest.mark.parametrize("accept", ["EN", "EN-us", "En-GB,fr;q=0.5", "en_US"])
def test_a_browser_language_is_answered_in_the_catalogues_spelling(accept):
    # The answer names a catalogue: "EN" would have no catalogue to load (and every page would fail).
    language = choose_language(None, None, accept)
    assert language == "en"
    assert i18n.translations(language).gettext("Morning") == "Morning"


def test_a_language_the_browser_refuses_is_not_chosen():
    assert choose_language(None, None, "en, zh;q=0") == "en"
    assert choose_language(None, None, "zh-CN;q=0.0, en-US;q=0.8") == "en"
    assert choose_language(None, None, "en;q=0") == DEFAULT_LANGUAGE


def test_every_choice_has_a_catalogue():
    for accept in ("en-US", "EN", "zh-TW", "fr", "", "*", "en;q=0"):
        for requested in (None, "en", "zh_CN", "de"):
            assert choose_language(requested, None, accept) in i18n.LANGUAGES


# ---- formatting ----------------------------------------------------------------------------------

@pytest.mark.parametrize("language", sorted(i18n.LANGUAGES))
def test_money_is_yuan_from_fen(language):
    money = Formatter(language).money(5000)
    assert "50.00" in money and "¥" in money, money
    assert "1,234.56" in Formatter(language).money(123456)
    assert "0.00" in Formatter(language).money(0)


def test_times_are_in_the_hospitals_time_zone():
    for language in i18n.LANGUAGES:
        fmt = Formatter(language)
        assert fmt.time("2026-12-01T00:00:00+00:00") == "08:00"
        assert fmt.time("2026-12-01T00:00:00Z") == "08:00"
        assert fmt.time("2026-12-01T15:30:00Z") == "23:30"
        assert fmt.time("2026-12-01T08:00:00+08:00") == "08:00"
        assert fmt.time("") == "—"
    instant = Formatter("en").instant("2026-11-30T16:30:00Z")
    assert (instant.date().isoformat(), instant.hour, instant.utcoffset().total_seconds()) == ("2026-12-01", 0, 8 * 3600)


def test_the_hospitals_date_is_shanghais_whatever_the_servers_zone():
    assert i18n.hospital_today(dt.datetime(2026, 11, 27, 23, 30, tzinfo=dt.timezone.utc)) == dt.date(2026, 11, 28)
    assert i18n.hospital_today(dt.datetime(2026, 11, 27, 15, 59, tzinfo=dt.timezone.utc)) == dt.date(2026, 11, 27)
    assert i18n.hospital_today() == dt.datetime.now(i18n.HOSPITAL_TIME).date()


def test_dates():
    assert "2026年12月1日" in Formatter("zh_CN").date("2026-12-01")
    assert "星期二" in Formatter("zh_CN").date("2026-12-01")
    assert Formatter("en").date("2026-12-01") == "Tuesday, December 1, 2026"
    assert Formatter("zh_CN").date("") == "—"
    assert Formatter("zh_CN").short_date("2026-12-01").startswith("12月1日")
    assert Formatter("en").short_date("2026-12-01") == "Tue 12/1"
    assert Formatter("zh_CN").html_lang == "zh-CN"
