"""The `--where` grammar of `ls` and `clean`: parse a filter once, test it against many runs.

    expression  := term ('or' term)*
    term        := factor ('and' factor)*
    factor      := 'not' factor | '(' expression ')' | comparison
    comparison  := KEY OP VALUE
    OP          := '=' | '==' | '!=' | '<' | '<=' | '>' | '>=' | '~' | '!~'
    KEY         := dotted key: training.lr, result.acc, status, tag (no space, quote or
                   operator character)
    VALUE       := 'text' | "text" | a bare word (up to a space or a parenthesis)

`and` binds tighter than `or`; `not`, `and`, `or` are lowercase words. A comparison is true
when the run has the key and:
- the run's value is a number (not a boolean) and VALUE, unquoted, reads as a number: they
  compare as numbers (`training.lr<0.01`, `exit!=0`);
- otherwise both compare as text: the run's value as written in YAML (`true`, `null`, a
  list as JSON), VALUE as typed (`status=succeeded`, `started>=2026-11-01`);
- `<`, `<=`, `>`, `>=` never hold for null or a boolean (`duration>60` leaves out a run that
  has no duration yet);
- `~` / `!~`: VALUE is a regular expression searched in the text (`name~^resnet`);
- a list value (`tag`, `tags`, a config list): `=` / `~` hold when one of its items matches,
  `!=` / `!~` when none does; `<`, `>` never hold.
A run without the key matches no comparison (`not` turns that around). Which key names what
(record fields, `result.*`, config keys) is `runs/fields.py`'s job: this module only needs a
function from a key to a value, `MISSING` when the run has none.

Errors are `QueryError`s (a `UsageError`: one line, exit 2) that point at the column with a
caret: `--where: column 15: expected a value after '<': training.lr < ^and x`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Union

from expyrun.errors import UsageError
from expyrun.runs.matching import MISSING, Comparison, sort_key, value_text

__all__ = ["MISSING", "Comparison", "QueryError", "Where", "parse_sort", "parse_where"]
__all__ += ["sort_key", "value_text"]

# A run's value of a key: JSON/YAML data, or MISSING.
Lookup = Callable[[str], object]


OPERATORS = ("<=", ">=", "!=", "==", "!~", "=", "<", ">", "~")
_KEYWORDS = frozenset({"and", "or", "not"})
# A key or a bare value ends at a space, a parenthesis, a quote or an operator character.
_KEY = re.compile(r"[^\s()'\"=<>!~]+")
_BARE_VALUE = re.compile(r"[^\s()]+")


class QueryError(UsageError):
    """A `--where` expression that cannot be parsed, or names a key no run has."""


@dataclass(frozen=True)
class Not:
    """`not operand`."""

    operand: Node


@dataclass(frozen=True)
class And:
    """`left and right` (right is not evaluated when left is false)."""

    left: Node
    right: Node


@dataclass(frozen=True)
class Or:
    """`left or right` (right is not evaluated when left is true)."""

    left: Node
    right: Node


Node = Union[Comparison, Not, And, Or]  # noqa: UP007 - a runtime alias, used before 3.10 too


@dataclass(frozen=True)
class Where:
    """A parsed `--where` expression: `matches(lookup)` tests one run."""

    text: str
    root: Node
    option: str = "--where"

    def comparisons(self) -> Iterator[Comparison]:
        """Every comparison, left to right."""
        return _comparisons(self.root)

    def key_names(self) -> list[str]:
        """The keys the expression reads, in order of appearance, each once."""
        return list(dict.fromkeys(c.key for c in self.comparisons()))

    def matches(self, lookup: Lookup) -> bool:
        """Whether the run whose keys `lookup` reads passes the filter."""
        return _evaluate(self.root, lookup)

    def unknown_key(self, key: str, candidates: list[str]) -> QueryError:
        """The error for `key`, which no run has; `candidates` are the keys runs have."""
        import difflib  # only on this error path: it costs start-up time

        column = next(c.column for c in self.comparisons() if c.key == key)
        close = difflib.get_close_matches(key, candidates, n=3, cutoff=0.6)
        hint = "did you mean " + " or ".join(f"'{k}'" for k in close) + "?" if close else None
        return QueryError(
            f"{self.option}: column {column}: unknown key '{key}': no run listed has it: "
            f"{_marked(self.text, column - 1)}",
            hint=hint,
        )


def parse_where(text: str, option: str = "--where") -> Where:
    """Parse a `--where` expression (grammar in the module docstring).

    Raises:
        QueryError: the text is not an expression; the message names the column.
    """
    parser = _Parser(text, option)
    root = parser.expression()
    parser.skip_spaces()
    if parser.pos < len(text):
        found = "')'" if text[parser.pos] == ")" else f"'{parser.word()}'"
        raise parser.error(f"expected 'and', 'or' or the end, found {found}")
    return Where(text, root, option)


def _marked(text: str, index: int) -> str:
    """The expression with a caret before character `index`, on one line."""
    return (text[:index] + "^" + text[index:]).replace("\n", " ")


class _Parser:
    """Recursive descent over the text; `pos` is the next character to read."""

    def __init__(self, text: str, option: str) -> None:
        self.text = text
        self.option = option
        self.pos = 0

    def error(self, message: str, at: int | None = None) -> QueryError:
        index = self.pos if at is None else at
        return QueryError(
            f"{self.option}: column {index + 1}: {message}: {_marked(self.text, index)}"
        )

    def skip_spaces(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1

    def word(self) -> str:
        match = _BARE_VALUE.match(self.text, self.pos)
        return match.group(0) if match else self.text[self.pos : self.pos + 1]

    def keyword(self, name: str) -> bool:
        """Consume the keyword `name` when it comes next, as a whole word."""
        self.skip_spaces()
        end = self.pos + len(name)
        if self.text[self.pos : end] != name:
            return False
        if end < len(self.text) and not (self.text[end].isspace() or self.text[end] in "()"):
            return False
        self.pos = end
        return True

    def expression(self) -> Node:
        node = self.term()
        while self.keyword("or"):
            node = Or(node, self.term())
        return node

    def term(self) -> Node:
        node = self.factor()
        while self.keyword("and"):
            node = And(node, self.factor())
        return node

    def factor(self) -> Node:
        if self.keyword("not"):
            return Not(self.factor())
        self.skip_spaces()
        if self.pos < len(self.text) and self.text[self.pos] == "(":
            opened = self.pos
            self.pos += 1
            node = self.expression()
            self.skip_spaces()
            if self.pos >= len(self.text) or self.text[self.pos] != ")":
                raise self.error(f"the '(' of column {opened + 1} is not closed")
            self.pos += 1
            return node
        return self.comparison()

    def comparison(self) -> Comparison:
        self.skip_spaces()
        start = self.pos
        match = _KEY.match(self.text, self.pos)
        if self.pos >= len(self.text):
            raise self.error("expected a comparison such as status=failed")
        if match is None:
            raise self.error(f"expected a key, found '{self.word()}'")
        key = match.group(0)
        if key in _KEYWORDS:
            raise self.error(f"expected a key, found the word '{key}'")
        self.pos = match.end()
        self.skip_spaces()
        op = next((o for o in OPERATORS if self.text.startswith(o, self.pos)), None)
        if op is None:
            shown = f"'{self.word()}'" if self.pos < len(self.text) else "the end"
            raise self.error(
                f"expected an operator (= != < <= > >= ~ !~) after '{key}', found {shown}"
            )
        self.pos += len(op)
        self.skip_spaces()
        value, quoted = self.value(op)
        return Comparison(
            key=key,
            op=op,
            value=value,
            quoted=quoted,
            column=start + 1,
            number=None if quoted else _number(value),
            pattern=self.pattern(value, op, start),
        )

    def value(self, op: str) -> tuple[str, bool]:
        if self.pos >= len(self.text) or self.text[self.pos] == ")":
            raise self.error(f"expected a value after '{op}'")
        quote = self.text[self.pos]
        if quote in "'\"":
            end = self.text.find(quote, self.pos + 1)
            if end < 0:
                raise self.error(f"the quote {quote} is not closed")
            value = self.text[self.pos + 1 : end]
            self.pos = end + 1
            return value, True
        value = self.word()
        if value in _KEYWORDS:
            raise self.error(f"expected a value after '{op}', found the word '{value}'")
        self.pos += len(value)
        return value, False

    def pattern(self, value: str, op: str, start: int) -> re.Pattern[str] | None:
        if op not in ("~", "!~"):
            return None
        try:
            return re.compile(value)
        except re.error as exc:
            raise self.error(f"not a regular expression ({exc.msg})", at=start) from None
        except (OverflowError, RecursionError) as exc:  # a{99999999999}; 2,000 nested groups
            reason = str(exc) if isinstance(exc, OverflowError) else "nested too deeply"
            raise self.error(f"not a regular expression ({reason})", at=start) from None


def _number(text: str) -> float | None:
    """`text` as a number (`0.01`, `1e-5`, `-3`, `inf`), None if it is not one."""
    try:
        value = float(text)
    except ValueError:
        return None
    return None if math.isnan(value) else value


def _comparisons(node: Node) -> Iterator[Comparison]:
    if isinstance(node, Comparison):
        yield node
    elif isinstance(node, Not):
        yield from _comparisons(node.operand)
    else:
        yield from _comparisons(node.left)
        yield from _comparisons(node.right)


def _evaluate(node: Node, lookup: Lookup) -> bool:
    if isinstance(node, Comparison):
        return node.holds(lookup(node.key))
    if isinstance(node, Not):
        return not _evaluate(node.operand, lookup)
    if isinstance(node, And):
        return _evaluate(node.left, lookup) and _evaluate(node.right, lookup)
    return _evaluate(node.left, lookup) or _evaluate(node.right, lookup)


def parse_sort(text: str) -> tuple[str, bool]:
    """`--sort KEY` (ascending) or `--sort -KEY` (descending): the key and whether descending.

    Raises:
        QueryError: no key.
    """
    descending = text.startswith("-")
    key = text[1:] if descending else text
    if not key or _KEY.fullmatch(key) is None:
        raise QueryError(f"--sort: expected a key such as result.acc or -started, got '{text}'")
    return key, descending
