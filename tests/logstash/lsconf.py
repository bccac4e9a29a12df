"""A test-only reader for Logstash pipeline files.

No maintained Logstash config parser exists on PyPI, so this covers the subset our pipelines
use: sections, plugin blocks, if/else if/else, and string, number, bareword, array and hash
values. Each plugin comes back with the conditions it sits under.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

TOKEN = re.compile(
    r"""\s+|\#[^\n]*
    |(?P<string>"(?:\\.|[^"\\])*"|'(?:\\.|[^'\\])*')
    |(?P<arrow>=>)
    |(?P<op>==|!=|=~|!~|<=|>=)
    |(?P<punct>[{}\[\],()<>!])
    |(?P<word>[^\s{}\[\],()"'=<>!\#]+)""",
    re.VERBOSE,
)


@dataclass(frozen=True)
class Plugin:
    section: str
    name: str
    settings: dict[str, Any]
    conditions: tuple[str, ...]


def _tokens(text: str) -> list[str]:
    out: list[str] = []
    pos = 0
    while pos < len(text):
        match = TOKEN.match(text, pos)
        if match is None:
            raise ValueError(f"cannot read config at {text[pos : pos + 30]!r}")
        pos = match.end()
        if match.lastgroup:
            out.append(match.group(match.lastgroup))
    return out


class _Reader:
    def __init__(self, text: str) -> None:
        self.tokens = _tokens(text)
        self.pos = 0

    def peek(self) -> str | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self, expected: str | None = None) -> str:
        token = self.tokens[self.pos]
        if expected is not None and token != expected:
            raise ValueError(f"expected {expected!r}, got {token!r} at token {self.pos}")
        self.pos += 1
        return token

    def config(self) -> list[Plugin]:
        plugins: list[Plugin] = []
        while self.peek() is not None:
            section = self.take()
            self.take("{")
            plugins += self.block(section, ())
        return plugins

    def block(self, section: str, conditions: tuple[str, ...]) -> list[Plugin]:
        plugins: list[Plugin] = []
        while self.peek() != "}":
            if self.peek() == "if":
                plugins += self.conditional(section, conditions)
            else:
                name = self.take()
                self.take("{")
                plugins.append(Plugin(section, name, self.entries(), conditions))
        self.take("}")
        return plugins

    def conditional(self, section: str, conditions: tuple[str, ...]) -> list[Plugin]:
        self.take("if")
        expression = self.expression()
        plugins = self.block(section, (*conditions, expression))
        negated = [f"not ({expression})"]
        while self.peek() == "else":
            self.take("else")
            if self.peek() == "if":
                self.take("if")
                expression = self.expression()
                plugins += self.block(section, (*conditions, *negated, expression))
                negated.append(f"not ({expression})")
            else:
                self.take("{")
                plugins += self.block(section, (*conditions, *negated))
        return plugins

    def expression(self) -> str:
        parts = []
        while self.peek() != "{":
            parts.append(self.take())
        self.take("{")
        return " ".join(parts)

    def entries(self) -> dict[str, Any]:
        settings: dict[str, Any] = {}
        while self.peek() != "}":
            if self.peek() == ",":
                self.take()
                continue
            key = _unquote(self.take())
            self.take("=>")
            settings[key] = self.value()
        self.take("}")
        return settings

    def value(self) -> Any:
        token = self.take()
        if token == "[":
            items = []
            while self.peek() != "]":
                if self.peek() == ",":
                    self.take()
                    continue
                items.append(self.value())
            self.take("]")
            return items
        if token == "{":
            return self.entries()
        if token[0] in "\"'":
            return _unquote(token)
        if self.peek() == "{":  # a codec with settings: codec => line { format => "..." }
            self.take("{")
            return {token: self.entries()}
        if re.fullmatch(r"-?\d+(\.\d+)?", token):
            return float(token) if "." in token else int(token)
        return {"true": True, "false": False}.get(token, token)


def _unquote(token: str) -> str:
    if token[:1] in "\"'" and token[-1:] == token[:1]:
        return token[1:-1]
    return token


def parse(text: str) -> list[Plugin]:
    return _Reader(text).config()
