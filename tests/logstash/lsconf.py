"""A test-only reader for Logstash pipeline files that follows Logstash's own config grammar.

No maintained Logstash config parser exists on PyPI. This one is a PEG parser written from the
grammar Logstash itself compiles with treetop,
`logstash-core/lib/logstash/compiler/lscl/lscl_grammar.treetop` (elastic/logstash), so it refuses
what Logstash refuses: rule names below are the grammar's. Two versions of the grammar matter:

- ``LSCL_8_15`` (tag v8.15.0 onwards, read at v8.19.20, the version the image pins): comments are
  allowed between hash entries and before the end of the file (elastic/logstash PR #16058).
- ``LSCL_BEFORE_8_15`` (read at v8.9.0): hash entries are separated by plain whitespace only
  (`hashentry (whitespace hashentry)*`), so a comment between two entries is a syntax error
  (elastic/logstash#12665), and a comment must end with a newline.

Rules both share and that a looser reader would miss: plugin settings are separated by at least
one whitespace character and never by commas (`attribute (whitespace cs attribute)*`), a bareword
has at least two characters, `not in` needs its space. Each plugin comes back with the
conditions it sits under (the source text of each `if`, and `not (...)` for earlier branches).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


class Grammar(enum.Enum):
    LSCL_BEFORE_8_15 = "before 8.15"
    LSCL_8_15 = "8.15 and later"


PINNED = Grammar.LSCL_8_15


@dataclass(frozen=True)
class Plugin:
    section: str
    name: str
    settings: dict[str, Any]
    conditions: tuple[str, ...]


class ConfigSyntaxError(ValueError):
    pass


class _Fail(Exception):
    """Backtracking signal of an ordered choice; the farthest one becomes the error message."""


# Terminals of the grammar, as regular expressions anchored at the current position.
_WHITESPACE = re.compile(r"[ \t\r\n]+")
_NAME = re.compile(r"[A-Za-z0-9_-]+")
_BAREWORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]+")
_NUMBER = re.compile(r"-?[0-9]+(\.[0-9]*)?")
_DOUBLE_QUOTED = re.compile(r'"(?:\\"|[^"])*"', re.DOTALL)
_SINGLE_QUOTED = re.compile(r"'(?:\\'|[^'])*'", re.DOTALL)
_REGEXP = re.compile(r"/(?:\\/|[^/])*/", re.DOTALL)
_SELECTOR_ELEMENT = re.compile(r"\[[^\]\[,]+\]")
_COMPARE = re.compile(r"==|!=|<=|>=|<|>")
_REGEXP_OPERATOR = re.compile(r"=~|!~")
_BOOLEAN = re.compile(r"and|or|xor|nand")
_COMMENT_LINE = {
    # `whitespace? "#" [^\r\n]* "\r"? "\n"` before 8.15; `newline_or_eoi` from 8.15 on.
    Grammar.LSCL_BEFORE_8_15: re.compile(r"[ \t\r\n]*#[^\r\n]*\r?\n"),
    Grammar.LSCL_8_15: re.compile(r"[ \t\r\n]*#[^\r\n]*(?:\r?\n|\Z)"),
}


class _Parser:
    def __init__(self, text: str, grammar: Grammar) -> None:
        self.text = text
        self.grammar = grammar
        self.pos = 0
        self.farthest = 0
        self.expected: set[str] = set()

    # -- primitives ------------------------------------------------------------------------
    def fail(self, expected: str) -> _Fail:
        if self.pos > self.farthest:
            self.farthest, self.expected = self.pos, {expected}
        elif self.pos == self.farthest:
            self.expected.add(expected)
        return _Fail()

    def match(self, pattern: re.Pattern[str], what: str) -> str:
        found = pattern.match(self.text, self.pos)
        if found is None:
            raise self.fail(what)
        self.pos = found.end()
        return found.group(0)

    def literal(self, word: str) -> str:
        if not self.text.startswith(word, self.pos):
            raise self.fail(repr(word))
        self.pos += len(word)
        return word

    def attempt(self, rule: Callable[[], Any]) -> tuple[bool, Any]:
        """PEG semantics: a failed alternative consumes nothing."""
        start = self.pos
        try:
            return True, rule()
        except _Fail:
            self.pos = start
            return False, None

    def choice(self, *rules: Callable[[], Any]) -> Any:
        for rule in rules:
            ok, value = self.attempt(rule)
            if ok:
                return value
        raise _Fail()

    # -- layout: rule `cs` (`_` before 8.15) is (comment / whitespace)* -------------------
    def cs(self) -> None:
        comment = _COMMENT_LINE[self.grammar]
        while True:
            found = comment.match(self.text, self.pos) or _WHITESPACE.match(self.text, self.pos)
            if found is None or found.end() == self.pos:
                return
            self.pos = found.end()

    def whitespace(self) -> None:
        self.match(_WHITESPACE, "whitespace")

    # -- config, sections, plugins -----------------------------------------------------------
    def config(self) -> list[Plugin]:
        plugins: list[Plugin] = []
        while True:
            ok, found = self.attempt(lambda: (self.cs(), self.plugin_section())[1])
            if not ok:
                break
            plugins += found
        self.cs()
        if self.pos != len(self.text):
            raise self.fail("input, filter or output section")
        return plugins

    def plugin_section(self) -> list[Plugin]:
        section = self.choice(*(lambda w=w: self.literal(w) for w in ("input", "filter", "output")))
        self.cs()
        self.literal("{")
        self.cs()
        plugins = self.branches_or_plugins(section, ())
        self.literal("}")
        return plugins

    def branches_or_plugins(self, section: str, conditions: tuple[str, ...]) -> list[Plugin]:
        """(branch_or_plugin cs)*"""
        plugins: list[Plugin] = []
        while True:
            ok, found = self.attempt(
                lambda: self.choice(
                    lambda: self.branch(section, conditions),
                    lambda: [self.plugin(section, conditions)],
                )
            )
            if not ok:
                return plugins
            plugins += found
            self.cs()

    def plugin(self, section: str, conditions: tuple[str, ...]) -> Plugin:
        name, settings = self.plugin_body()
        return Plugin(section, name, settings, conditions)

    def plugin_body(self) -> tuple[str, dict[str, Any]]:
        """name cs "{" cs (attribute (whitespace cs attribute)*)? cs "}" """
        name = self.name()
        self.cs()
        self.literal("{")
        self.cs()
        settings: dict[str, Any] = {}
        ok, first = self.attempt(self.attribute)
        if ok:
            settings[first[0]] = first[1]
            while True:
                ok, more = self.attempt(lambda: (self.whitespace(), self.cs(), self.attribute())[2])
                if not ok:
                    break
                settings[more[0]] = more[1]
        self.cs()
        self.literal("}")
        return name, settings

    def name(self) -> str:
        return str(self.choice(lambda: self.match(_NAME, "a name"), self.string))

    def attribute(self) -> tuple[str, Any]:
        key = self.name()
        self.cs()
        self.literal("=>")
        self.cs()
        return key, self.value()

    # -- values ----------------------------------------------------------------------------
    def value(self) -> Any:
        return self.choice(
            lambda: dict([self.plugin_body()]),  # a codec with settings: line { format => ... }
            self.bareword,
            self.string,
            self.number,
            self.array,
            self.hash,
        )

    def bareword(self) -> Any:
        word = self.match(_BAREWORD, "a bareword")
        return {"true": True, "false": False}.get(word, word)

    def string(self) -> str:
        quoted = self.choice(
            lambda: self.match(_DOUBLE_QUOTED, "a string"),
            lambda: self.match(_SINGLE_QUOTED, "a string"),
        )
        # Logstash keeps escapes as written unless config.support_escapes is set.
        return str(quoted[1:-1])

    def number(self) -> int | float:
        text = self.match(_NUMBER, "a number")
        return float(text) if "." in text else int(text)

    def array(self) -> list[Any]:
        """ "[" cs (value (cs "," cs value)*)? cs "]" """
        self.literal("[")
        self.cs()
        items: list[Any] = []
        ok, first = self.attempt(self.value)
        if ok:
            items.append(first)
            while True:
                ok, more = self.attempt(
                    lambda: (self.cs(), self.literal(","), self.cs(), self.value())[3]
                )
                if not ok:
                    break
                items.append(more)
        self.cs()
        self.literal("]")
        return items

    def hash(self) -> dict[str, Any]:
        """ "{" cs hashentries? cs "}"; entries separated by cs (8.15+) or whitespace (before)"""
        self.literal("{")
        self.cs()
        entries: dict[str, Any] = {}
        ok, first = self.attempt(self.hashentry)
        if ok:
            entries[first[0]] = first[1]
            separator = self.cs if self.grammar is Grammar.LSCL_8_15 else self.whitespace
            while True:
                ok, more = self.attempt(lambda: (separator(), self.hashentry())[1])
                if not ok:
                    break
                entries[more[0]] = more[1]
        self.cs()
        self.literal("}")
        return entries

    def hashentry(self) -> tuple[str, Any]:
        key = self.choice(
            lambda: self.match(_NUMBER, "a number"),
            lambda: self.match(_BAREWORD, "a bareword"),
            self.string,
        )
        self.cs()
        self.literal("=>")
        self.cs()
        return str(key), self.value()

    # -- conditionals ----------------------------------------------------------------------
    def branch(self, section: str, conditions: tuple[str, ...]) -> list[Plugin]:
        """if (cs else_if)* (cs else)?"""
        self.literal("if")
        self.cs()
        expression = self.condition()
        plugins = self.conditional_block(section, (*conditions, expression))
        negated = [f"not ({expression})"]
        while True:
            ok, found = self.attempt(lambda: self.else_if(section, (*conditions, *negated)))
            if not ok:
                break
            else_plugins, expression = found
            plugins += else_plugins
            negated.append(f"not ({expression})")
        ok, found = self.attempt(lambda: self.else_(section, (*conditions, *negated)))
        return plugins + (found if ok else [])

    def else_if(self, section: str, conditions: tuple[str, ...]) -> tuple[list[Plugin], str]:
        self.cs()
        self.literal("else")
        self.cs()
        self.literal("if")
        self.cs()
        expression = self.condition()
        return self.conditional_block(section, (*conditions, expression)), expression

    def else_(self, section: str, conditions: tuple[str, ...]) -> list[Plugin]:
        self.cs()
        self.literal("else")
        self.cs()
        return self.conditional_block(section, conditions)

    def conditional_block(self, section: str, conditions: tuple[str, ...]) -> list[Plugin]:
        """cs "{" cs (branch_or_plugin cs)* "}" """
        self.cs()
        self.literal("{")
        self.cs()
        plugins = self.branches_or_plugins(section, conditions)
        self.literal("}")
        return plugins

    def condition(self) -> str:
        """expression (cs boolean_operator cs expression)*, returned as its source text"""
        start = self.pos
        self.expression()
        while self.attempt(
            lambda: (
                self.cs(),
                self.match(_BOOLEAN, "and/or/xor/nand"),
                self.cs(),
                self.expression(),
            )
        )[0]:
            pass
        return " ".join(self.text[start : self.pos].split())

    def expression(self) -> None:
        self.choice(
            lambda: (self.literal("("), self.cs(), self.condition(), self.cs(), self.literal(")")),
            self.negative_expression,
            lambda: (self.rvalue(), self.cs(), self.literal("in"), self.cs(), self.rvalue()),
            lambda: (
                self.rvalue(),
                self.cs(),
                self.literal("not "),
                self.cs(),
                self.literal("in"),
                self.cs(),
                self.rvalue(),
            ),
            lambda: (
                self.rvalue(),
                self.cs(),
                self.match(_COMPARE, "a comparison"),
                self.cs(),
                self.rvalue(),
            ),
            lambda: (
                self.rvalue(),
                self.cs(),
                self.match(_REGEXP_OPERATOR, "=~ or !~"),
                self.cs(),
                self.choice(self.string, lambda: self.match(_REGEXP, "a regexp")),
            ),
            self.rvalue,
        )

    def negative_expression(self) -> None:
        self.literal("!")
        self.cs()
        self.choice(
            lambda: (self.literal("("), self.cs(), self.condition(), self.cs(), self.literal(")")),
            self.selector,
        )

    def rvalue(self) -> None:
        self.choice(
            self.string,
            self.number,
            self.selector,
            self.array,
            self.method_call,
            lambda: self.match(_REGEXP, "a regexp"),
        )

    def selector(self) -> None:
        self.match(_SELECTOR_ELEMENT, "a field reference")
        while self.attempt(lambda: self.match(_SELECTOR_ELEMENT, "a field reference"))[0]:
            pass

    def method_call(self) -> None:
        self.match(_BAREWORD, "a method name")
        self.cs()
        self.literal("(")
        self.cs()
        if self.attempt(self.rvalue)[0]:
            while self.attempt(lambda: (self.cs(), self.literal(","), self.cs(), self.rvalue()))[0]:
                pass
        self.cs()
        self.literal(")")


def parse(text: str, grammar: Grammar = PINNED) -> list[Plugin]:
    """The plugins of a pipeline config, or ConfigSyntaxError where Logstash's parser stops."""
    parser = _Parser(text, grammar)
    try:
        return parser.config()
    except _Fail:
        at = parser.farthest
        line = text.count("\n", 0, at) + 1
        column = at - (text.rfind("\n", 0, at) + 1) + 1
        expected = " or ".join(sorted(parser.expected))
        raise ConfigSyntaxError(
            f"line {line}, column {column} ({grammar.value} grammar): expected {expected}, "
            f"got {text[at : at + 20]!r}"
        ) from None
