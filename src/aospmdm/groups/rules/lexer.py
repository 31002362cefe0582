"""Tokens of the membership rule language, and the error every stage raises."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

MAX_RULE_LENGTH = 3072
# The official examples contain en dashes where a hyphen belongs (`user.mail \u2013ne null`).
HYPHENS = "-\u2013"
_PUNCTUATION = {"(": "LPAREN", ")": "RPAREN", "[": "LBRACKET", "]": "RBRACKET", ",": "COMMA"}


class RuleError(ValueError):
    """An invalid rule: `position` is the 0-based offset of the offending token."""

    def __init__(self, message: str, position: int):
        super().__init__(message)
        self.message = message
        self.position = position

    def __str__(self) -> str:
        return f"{self.message} (at position {self.position})"


class Kind(Enum):
    LPAREN = "("
    RPAREN = ")"
    LBRACKET = "["
    RBRACKET = "]"
    COMMA = ","
    STRING = "string"
    WORD = "word"  # property, `_`, true/false/null, or an operator written without hyphen
    OPERATOR = "operator"  # -eq, -and, …: text holds the word after the hyphen
    END = "end of rule"


@dataclass(frozen=True)
class Token:
    kind: Kind
    text: str  # the word, the operator name, or a string's unescaped value
    position: int


def _is_word_char(c: str) -> bool:
    return c.isalnum() or c in "_.$"


def tokenize(text: str) -> list[Token]:
    """Split a rule into tokens; raises RuleError on unterminated strings or stray characters."""
    if len(text) > MAX_RULE_LENGTH:
        raise RuleError(
            f"The rule is longer than {MAX_RULE_LENGTH} characters ({len(text)})",
            MAX_RULE_LENGTH,
        )
    tokens: list[Token] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c.isspace():
            i += 1
        elif c in _PUNCTUATION:
            tokens.append(Token(Kind[_PUNCTUATION[c]], c, i))
            i += 1
        elif c in "\"'":
            value, end = _string(text, i)
            tokens.append(Token(Kind.STRING, value, i))
            i = end
        elif c in HYPHENS:
            j = i + 1
            while j < n and _is_word_char(text[j]):
                j += 1
            if j == i + 1:
                raise RuleError(f"Expected an operator name after '{c}'", i)
            tokens.append(Token(Kind.OPERATOR, text[i + 1 : j], i))
            i = j
        elif _is_word_char(c):
            j = i + 1
            while j < n and _is_word_char(text[j]):
                j += 1
            tokens.append(Token(Kind.WORD, text[i:j], i))
            i = j
        else:
            raise RuleError(f"Unexpected character {c!r}", i)
    tokens.append(Token(Kind.END, "", n))
    return tokens


def _string(text: str, start: int) -> tuple[str, int]:
    """The value of the string literal opening at `start`, and the offset after it.

    Inside double quotes a backtick escapes a double quote (`` `" ``); inside single quotes
    two single quotes stand for one. Nothing else is an escape.
    """
    quote = text[start]
    out: list[str] = []
    i, n = start + 1, len(text)
    while i < n:
        c = text[i]
        if quote == '"' and c == "`" and i + 1 < n and text[i + 1] == '"':
            out.append('"')
            i += 2
        elif c == quote:
            if quote == "'" and i + 1 < n and text[i + 1] == "'":
                out.append("'")
                i += 2
            else:
                return "".join(out), i + 1
        else:
            out.append(c)
            i += 1
    raise RuleError(f"Unbalanced quotes: the string opened with {quote} is never closed", start)


def quote(value: str) -> str:
    """A string literal that tokenizes back to `value`."""
    if "`" in value:
        # A backtick before the closing quote would read as an escape: use single quotes.
        return "'" + value.replace("'", "''") + "'"
    return '"' + value.replace('"', '`"') + '"'
