"""A course's glossary (``glossary.md``): one word per notion, and the variants its text must not use.

The file is a front matter with a ``title``, an introduction, and one Markdown table whose
rows are: the term, its English name, the rejected variants (comma-separated, may be empty)
and what it means. ``course_lint`` flags every rejected variant in the course's prose
(``glossary_problems``); the learner reads the glossary on its own page.

A variant matches its inflected forms: each of its words is cut after its last consonant
("производитель" to "производител") and may be followed by up to three more letters, so
"производителя" and "производителями" match it and "производительность" does not. Code
(fenced blocks and inline), link addresses and the front matter's keys are not prose.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

from django.utils.translation import gettext as _

from .course_files import CourseFormatError, FormatProblem, check_meta, split_front_matter

GLOSSARY_FILE = "glossary.md"
_COLUMNS = 4
_ENDING_LETTERS = 3
_VOWELS_AND_SIGNS = "аеёиоуыэюяйьъ"
_WORD = r"[а-яёa-z-]"


@dataclass(frozen=True)
class Term:
    term: str
    english: str
    rejected: tuple[str, ...]
    meaning: str
    line: int


@dataclass(frozen=True)
class Glossary:
    title: str
    body: str
    terms: tuple[Term, ...]


def _cells(row: str) -> list[str]:
    return [cell.strip() for cell in row.strip().strip("|").split("|")]


def parse_glossary(source: str, *, file: str = GLOSSARY_FILE) -> Glossary:
    """The glossary's terms; a table that is not four columns, or a term without a name, is a located error."""
    meta, body, first_line = split_front_matter(source, file=file)
    problems = check_meta(meta, {"title": str}, file=file)
    terms: list[Term] = []
    rows = [(first_line + i, line) for i, line in enumerate(body.split("\n")) if line.lstrip().startswith("|")]
    for number, (line, row) in enumerate(rows):
        cells = _cells(row)
        if number == 1 and all(set(cell) <= set(":- ") for cell in cells):
            continue
        if len(cells) != _COLUMNS:
            problems.append(
                FormatProblem(
                    file,
                    line,
                    _("в строке таблицы {count} столбцов, нужно 4: термин | English | не пишем | что это").format(
                        count=len(cells)
                    ),
                )
            )
            continue
        if number == 0:
            continue  # the header
        term, english, rejected, meaning = cells
        if not term:
            problems.append(FormatProblem(file, line, _("у строки глоссария нет термина")))
            continue
        variants = tuple(v.strip() for v in rejected.split(",") if v.strip())
        terms.append(Term(term, english, variants, meaning, line))
    if not problems and not terms:
        problems.append(FormatProblem(file, first_line, _("в глоссарии нет таблицы терминов")))
    if problems:
        raise CourseFormatError(problems)
    return Glossary(title=str(meta["title"]), body=body, terms=tuple(terms))


def _word_pattern(word: str) -> str:
    stem = word.lower().rstrip(_VOWELS_AND_SIGNS) or word.lower()
    return rf"{re.escape(stem)}[а-яё]{{0,{_ENDING_LETTERS}}}"


def variant_pattern(variant: str) -> re.Pattern[str]:
    """The forms of a rejected variant, as whole words; its words may be split by any spaces or a line end."""
    words = [_word_pattern(w) for w in re.split(r"[\s-]+", variant.strip()) if w]
    return re.compile(rf"(?<!{_WORD})" + r"[\s-]+".join(words) + rf"(?!{_WORD})", re.IGNORECASE)


def prose(source: str) -> str:
    """``source`` with code, addresses and front matter keys blanked, line breaks kept, so matches keep their line."""

    def blank(match: re.Match[str]) -> str:
        return re.sub(r"[^\n]", " ", match.group(0))

    text = re.sub(r"^(```|~~~).*?^\1[^\n]*$", blank, source, flags=re.M | re.S)
    text = re.sub(r"`[^`\n]*`", blank, text)
    text = re.sub(r"\]\([^)\n]*\)|<https?://[^>\n]*>|https?://\S+", blank, text)
    return re.sub(r"^[a-z_]+:", blank, text, flags=re.M)


def rejected_uses(source: str, terms: Iterable[Term]) -> Iterator[tuple[int, str, Term]]:
    """(line, the words as written, the term to use) for each rejected variant in ``source``'s prose."""
    text = prose(source)
    for term in terms:
        for variant in term.rejected:
            for match in variant_pattern(variant).finditer(text):
                yield text.count("\n", 0, match.start()) + 1, " ".join(match.group(0).split()), term


def glossary_problems(glossary: Glossary, files: Mapping[str, str]) -> list[FormatProblem]:
    """Every rejected variant in ``files`` (name to source), each naming the glossary's term."""
    problems = []
    for name, source in files.items():
        for line, found, term in sorted(rejected_uses(source, glossary.terms), key=lambda use: use[0]):
            message = _("«{found}»: в глоссарии курса это «{term}» ({english})")
            problems.append(FormatProblem(name, line, message.format(found=found, term=term.term, english=term.english)))
    return problems
