"""Label and field selectors as the Kubernetes API understands them.

Label selectors
    :func:`parse_label_selector` reads the string grammar of the ``labelSelector`` query
    parameter (``app=web``, ``tier in (a,b)``, ``!canary``, ``rank>3``, ...) exactly as
    apimachinery's ``labels.Parse`` does, with the same error texts.
    :func:`selector_from_label_selector_object` converts the structured
    ``{"matchLabels", "matchExpressions"}`` object of Deployments/ReplicaSets, and
    :func:`format_label_selector_object` renders that object the way kubectl prints it.
    :func:`selector_from_map` turns a Service's ``spec.selector`` map into a selector.

Field selectors
    :func:`parse_field_selector` reads the ``fieldSelector`` parameter (``=``, ``==``,
    ``!=``, comma = AND, values escaped as ``\\,`` ``\\=`` ``\\\\``).
    :func:`validate_field_selector` checks the fields against what the kind supports and
    raises the API server's 400 messages; :meth:`FieldSelector.matches` reads field
    values out of an object dict per kind.

Every syntax or validation problem raises :class:`~svcnet.model.errors.APIError` 400
``BadRequest`` whose message is the text a real API server sends.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from enum import Enum, StrEnum
from typing import Any

from svcnet.model import names
from svcnet.model.errors import APIError, bad_request

__all__ = [
    "FieldRequirement",
    "FieldSelector",
    "LabelSelector",
    "Operator",
    "Requirement",
    "escape_field_value",
    "format_label_selector_object",
    "parse_field_selector",
    "parse_label_selector",
    "selector_from_label_selector_object",
    "selector_from_map",
    "supported_fields",
    "unescape_field_value",
    "validate_field_selector",
]


class _SelectorError(Exception):
    """Internal: a parse/validation failure carrying the exact upstream message."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


# --- Go-compatible rendering of values in messages ---------------------------------------

_GO_ESCAPES = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t",
               "\v": "\\v", '"': '\\"', "\\": "\\\\"}


def _go_quote_char(ch: str) -> str:
    if ch in _GO_ESCAPES:
        return _GO_ESCAPES[ch]
    if ch.isprintable():
        return ch
    code = ord(ch)
    if code < 0x80:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def _go_quote(s: str) -> str:
    """``s`` rendered like Go's ``%q``."""
    return '"' + "".join(_go_quote_char(ch) for ch in s) + '"'


def _go_json_list(values: list[str]) -> str:
    """A string slice rendered like Go's ``json.Marshal`` (an empty slice here is nil)."""
    if not values:
        return "null"
    text = json.dumps(values, ensure_ascii=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _invalid(path: str, rendered_value: str, detail: str) -> str:
    """One ``field.Invalid`` error text: ``<path>: Invalid value: <value>: <detail>``."""
    return f"{path}: Invalid value: {rendered_value}: {detail}"


def _aggregate(messages: list[str]) -> str:
    """Several errors joined like apimachinery's aggregate: deduplicated, ``[a, b]``."""
    unique = list(dict.fromkeys(messages))
    return unique[0] if len(unique) == 1 else "[" + ", ".join(unique) + "]"


_INT_RE = re.compile(r"[+-]?[0-9]+")


def _parse_int64(text: str) -> int | None:
    """``text`` as Go's ``strconv.ParseInt(text, 10, 64)`` reads it, or None."""
    if not _INT_RE.fullmatch(text):
        return None
    n = int(text)
    return n if -(2**63) <= n < 2**63 else None


# --- requirements ------------------------------------------------------------------------


class Operator(StrEnum):
    """Label selector operators; values are apimachinery's ``selection.Operator`` strings."""

    IN = "in"
    NOT_IN = "notin"
    EQUALS = "="
    DOUBLE_EQUALS = "=="
    NOT_EQUALS = "!="
    EXISTS = "exists"
    DOES_NOT_EXIST = "!"
    GREATER_THAN = "gt"
    LESS_THAN = "lt"


_BINARY_OPERATORS = (Operator.IN, Operator.NOT_IN, Operator.EQUALS, Operator.DOUBLE_EQUALS,
                     Operator.NOT_EQUALS, Operator.GREATER_THAN, Operator.LESS_THAN)
_SET_OPS = (Operator.IN, Operator.NOT_IN)
_EXACT_OPS = (Operator.EQUALS, Operator.DOUBLE_EQUALS, Operator.NOT_EQUALS)
_UNARY_OPS = (Operator.EXISTS, Operator.DOES_NOT_EXIST)
_ORDER_OPS = (Operator.GREATER_THAN, Operator.LESS_THAN)
_OP_TEXT = {Operator.EQUALS: "=", Operator.DOUBLE_EQUALS: "==", Operator.NOT_EQUALS: "!=",
            Operator.IN: " in ", Operator.NOT_IN: " notin ", Operator.GREATER_THAN: ">",
            Operator.LESS_THAN: "<"}


@dataclass(frozen=True)
class Requirement:
    """One condition on one label key. Build through the parsers, which validate."""

    key: str
    operator: Operator
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether ``labels`` satisfy this condition (apimachinery semantics: ``!=`` and
        ``notin`` match a missing key; ``>``/``<`` need an integer label value)."""
        present = self.key in labels
        op = self.operator
        if op in (Operator.IN, Operator.EQUALS, Operator.DOUBLE_EQUALS):
            return present and labels[self.key] in self.values
        if op in (Operator.NOT_IN, Operator.NOT_EQUALS):
            return not present or labels[self.key] not in self.values
        if op is Operator.EXISTS:
            return present
        if op is Operator.DOES_NOT_EXIST:
            return not present
        return present and self._compare(labels[self.key])

    def _compare(self, label_value: str) -> bool:
        have = _parse_int64(label_value)
        want = _parse_int64(self.values[0]) if len(self.values) == 1 else None
        if have is None or want is None:
            return False
        return have > want if self.operator is Operator.GREATER_THAN else have < want

    def __str__(self) -> str:
        """Canonical text: ``k=v``, ``k in (a,b)`` (values sorted), ``k``, ``!k``, ``k>1``."""
        if self.operator is Operator.EXISTS:
            return self.key
        if self.operator is Operator.DOES_NOT_EXIST:
            return "!" + self.key
        vals = ",".join(sorted(self.values))
        if self.operator in _SET_OPS:
            vals = "(" + vals + ")"
        return self.key + _OP_TEXT[self.operator] + vals


def _operator_value_errors(op: Operator, values: list[str]) -> list[str]:
    if op in _SET_OPS and not values:
        return [_invalid("values", _go_json_list(values),
                         "for 'in', 'notin' operators, values set can't be empty")]
    if op in _EXACT_OPS and len(values) != 1:
        return [_invalid("values", _go_json_list(values),
                         "exact-match compatibility requires one single value")]
    if op in _UNARY_OPS and values:
        return [_invalid("values", _go_json_list(values),
                         "values set must be empty for exists and does not exist")]
    if op in _ORDER_OPS:
        return _order_value_errors(values)
    return []


def _order_value_errors(values: list[str]) -> list[str]:
    errs: list[str] = []
    if len(values) != 1:
        errs.append(_invalid("values", _go_json_list(values),
                             "for 'Gt', 'Lt' operators, exactly one value is required"))
    for i, v in enumerate(values):
        if _parse_int64(v) is None:
            errs.append(_invalid(f"values[{i}]", _go_quote(v),
                                 "for 'Gt', 'Lt' operators, the value must be an integer"))
    return errs


def _new_requirement(key: str, op: Operator, values: list[str]) -> Requirement:
    """A validated requirement, or :class:`_SelectorError` with apimachinery's text."""
    errs: list[str] = []
    key_errs = names.qualified_name_errors(key)
    if key_errs:
        errs.append(_invalid("key", _go_quote(key), "; ".join(key_errs)))
    errs.extend(_operator_value_errors(op, values))
    for i, v in enumerate(values):
        value_errs = names.label_value_errors(v)
        if value_errs:
            errs.append(_invalid(f"values[{i}][{key}]", _go_quote(v), "; ".join(value_errs)))
    if errs:
        raise _SelectorError(_aggregate(errs))
    return Requirement(key, op, tuple(values))


# --- LabelSelector -----------------------------------------------------------------------


@dataclass(frozen=True)
class LabelSelector:
    """An AND of :class:`Requirement` s, sorted by key.

    No requirements selects everything. ``matches_nothing`` marks the selector of a nil
    structured selector (apimachinery's ``labels.Nothing()``): it matches no object and
    renders as ``""``.
    """

    requirements: tuple[Requirement, ...] = ()
    matches_nothing: bool = False

    @classmethod
    def everything(cls) -> LabelSelector:
        return cls()

    @classmethod
    def nothing(cls) -> LabelSelector:
        return cls(matches_nothing=True)

    @property
    def empty(self) -> bool:
        """True when the selector does not restrict anything (matches every object)."""
        return not self.matches_nothing and not self.requirements

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        """Whether an object with ``labels`` (None = no labels) is selected."""
        if self.matches_nothing:
            return False
        have: Mapping[str, str] = labels or {}
        return all(r.matches(have) for r in self.requirements)

    def requires_exact_match(self, key: str) -> str | None:
        """The single value ``key`` must have (``=``, ``==`` or one-value ``in``), or None."""
        for r in self.requirements:
            if r.key != key:
                continue
            exact = r.operator in (Operator.EQUALS, Operator.DOUBLE_EQUALS, Operator.IN)
            return r.values[0] if exact and len(r.values) == 1 else None
        return None

    def __str__(self) -> str:
        """Canonical string form (requirements sorted by key, joined by ``,``)."""
        return ",".join(str(r) for r in self.requirements)


def _sorted_selector(reqs: Iterable[Requirement]) -> LabelSelector:
    return LabelSelector(tuple(sorted(reqs, key=lambda r: r.key)))


# --- label selector lexer and parser -----------------------------------------------------


class _Tok(Enum):
    ERROR = 0
    END = 1
    CLOSE_PAR = 2
    COMMA = 3
    NOT = 4
    DOUBLE_EQUALS = 5
    EQUALS = 6
    GREATER = 7
    IDENT = 8
    IN = 9
    LESS = 10
    NOT_EQUALS = 11
    NOT_IN = 12
    OPEN_PAR = 13


_LITERALS = {")": _Tok.CLOSE_PAR, ",": _Tok.COMMA, "!": _Tok.NOT, "==": _Tok.DOUBLE_EQUALS,
             "=": _Tok.EQUALS, ">": _Tok.GREATER, "in": _Tok.IN, "<": _Tok.LESS,
             "!=": _Tok.NOT_EQUALS, "notin": _Tok.NOT_IN, "(": _Tok.OPEN_PAR}
_SPECIAL = frozenset("=!(),><")
_WHITESPACE = frozenset(" \t\r\n")
_Item = tuple[_Tok, str]


def _scan_symbol(text: str, pos: int) -> tuple[_Item, int]:
    """Longest operator made of special characters starting at ``pos``."""
    best: _Item | None = None
    best_end = pos
    end = pos
    while end < len(text) and text[end] in _SPECIAL:
        end += 1
        tok = _LITERALS.get(text[pos:end])
        if tok is not None:
            best, best_end = (tok, text[pos:end]), end
        elif best is not None:
            break
    if best is None:
        return (_Tok.ERROR, f"error expected: keyword found '{text[pos:end]}'"), end
    return best, best_end


def _scan_word(text: str, pos: int) -> tuple[_Item, int]:
    """An identifier (or the keywords ``in``/``notin``) starting at ``pos``."""
    end = pos
    while end < len(text) and text[end] not in _SPECIAL and text[end] not in _WHITESPACE:
        end += 1
    word = text[pos:end]
    return (_LITERALS.get(word, _Tok.IDENT), word), end


def _lex(text: str) -> list[_Item]:
    """All tokens of ``text``, ending with one END token."""
    items: list[_Item] = []
    pos = 0
    while True:
        while pos < len(text) and text[pos] in _WHITESPACE:
            pos += 1
        if pos >= len(text):
            items.append((_Tok.END, ""))
            return items
        scan = _scan_symbol if text[pos] in _SPECIAL else _scan_word
        item, pos = scan(text, pos)
        items.append(item)


_TOKEN_TO_OPERATOR = {_Tok.IN: Operator.IN, _Tok.EQUALS: Operator.EQUALS,
                      _Tok.DOUBLE_EQUALS: Operator.DOUBLE_EQUALS,
                      _Tok.GREATER: Operator.GREATER_THAN, _Tok.LESS: Operator.LESS_THAN,
                      _Tok.NOT_IN: Operator.NOT_IN, _Tok.NOT_EQUALS: Operator.NOT_EQUALS}


class _Parser:
    """Recursive-descent parser over :func:`_lex` tokens, mirroring ``labels.Parse``.

    In the *values* context the keywords ``in``/``notin`` read as identifiers, so they
    are valid keys and values; only the operator position sees them as keywords.
    """

    def __init__(self, text: str) -> None:
        self._items = _lex(text)
        self._pos = 0

    def _peek(self, values: bool = True) -> _Item:
        return self._as_context(self._items[self._pos], values)

    def _next(self, values: bool = True) -> _Item:
        self._pos += 1
        return self._as_context(self._items[self._pos - 1], values)

    @staticmethod
    def _as_context(item: _Item, values: bool) -> _Item:
        if values and item[0] in (_Tok.IN, _Tok.NOT_IN):
            return _Tok.IDENT, item[1]
        return item

    def parse(self) -> list[Requirement]:
        reqs: list[Requirement] = []
        while True:
            tok, lit = self._peek()
            if tok is _Tok.END:
                return reqs
            if tok not in (_Tok.IDENT, _Tok.NOT):
                raise _SelectorError(f"found '{lit}', expected: !, identifier, or 'end of string'")
            try:
                reqs.append(self._requirement())
            except _SelectorError as e:
                raise _SelectorError("unable to parse requirement: " + e.message) from None
            if self._after_requirement():
                return reqs

    def _after_requirement(self) -> bool:
        """Consume the separator after a requirement; True at the end of the input."""
        tok, lit = self._next()
        if tok is _Tok.END:
            return True
        if tok is not _Tok.COMMA:
            raise _SelectorError(f"found '{lit}', expected: ',' or 'end of string'")
        tok2, lit2 = self._peek()
        if tok2 not in (_Tok.IDENT, _Tok.NOT):
            raise _SelectorError(f"found '{lit2}', expected: identifier after ','")
        return False

    def _requirement(self) -> Requirement:
        key, op = self._key_and_inferred_operator()
        if op is not None:
            return _new_requirement(key, op, [])
        op = self._operator()
        values = self._set_values() if op in _SET_OPS else self._exact_value()
        return _new_requirement(key, op, sorted(values))

    def _key_and_inferred_operator(self) -> tuple[str, Operator | None]:
        op: Operator | None = None
        tok, lit = self._next()
        if tok is _Tok.NOT:
            op = Operator.DOES_NOT_EXIST
            tok, lit = self._next()
        if tok is not _Tok.IDENT:
            raise _SelectorError(f"found '{lit}', expected: identifier")
        key_errs = names.qualified_name_errors(lit)
        if key_errs:
            raise _SelectorError(_invalid("<nil>", _go_quote(lit), "; ".join(key_errs)))
        if op is None and self._peek()[0] in (_Tok.END, _Tok.COMMA):
            op = Operator.EXISTS
        return lit, op

    def _operator(self) -> Operator:
        tok, lit = self._next(values=False)
        op = _TOKEN_TO_OPERATOR.get(tok)
        if op is None:
            expected = ", ".join(str(o) for o in _BINARY_OPERATORS)
            raise _SelectorError(f"found '{lit}', expected: {expected}")
        return op

    def _set_values(self) -> set[str]:
        tok, lit = self._next()
        if tok is not _Tok.OPEN_PAR:
            raise _SelectorError(f"found '{lit}' expected: '('")
        tok, lit = self._peek()
        if tok in (_Tok.IDENT, _Tok.COMMA):
            values = self._identifier_list()
            self._next()  # the ')' that ended the list
            return values
        if tok is _Tok.CLOSE_PAR:
            self._next()
            return {""}
        raise _SelectorError(f"found '{lit}', expected: ',', ')' or identifier")

    def _identifier_list(self) -> set[str]:
        """Comma-separated, possibly empty identifiers up to (not including) ``)``."""
        values: set[str] = set()
        while True:
            tok, lit = self._next()
            if tok is _Tok.IDENT:
                values.add(lit)
                tok2, lit2 = self._peek()
                if tok2 is _Tok.CLOSE_PAR:
                    return values
                if tok2 is not _Tok.COMMA:
                    raise _SelectorError(f"found '{lit2}', expected: ',' or ')'")
            elif tok is _Tok.COMMA:
                if self._comma_in_list(values):
                    return values
            else:
                raise _SelectorError(f"found '{lit}', expected: ',', or identifier")

    def _comma_in_list(self, values: set[str]) -> bool:
        """Empty values around a comma; True when the list ends right after it."""
        if not values:
            values.add("")
        tok, _ = self._peek()
        if tok is _Tok.CLOSE_PAR:
            values.add("")
            return True
        if tok is _Tok.COMMA:
            self._next()
            values.add("")
        return False

    def _exact_value(self) -> set[str]:
        tok, _ = self._peek()
        if tok in (_Tok.END, _Tok.COMMA):
            return {""}
        tok, lit = self._next()
        if tok is not _Tok.IDENT:
            raise _SelectorError(f"found '{lit}', expected: identifier")
        return {lit}


def parse_label_selector(text: str) -> LabelSelector:
    """Parse the string form of a label selector (the ``labelSelector`` parameter).

    Grammar (apimachinery ``labels.Parse``): requirements joined by ``,`` (AND); each is
    ``[!]KEY``, ``KEY (=|==|!=) VALUE``, ``KEY (in|notin) (V1,V2,...)`` or
    ``KEY (>|<) INTEGER``; whitespace between tokens is ignored; ``""`` selects
    everything. Keys must be qualified names (optional DNS-subdomain prefix), values
    valid label values. Requirements are sorted by key; set values are deduplicated.

    Raises APIError 400 BadRequest with apimachinery's message, e.g.
    ``unable to parse requirement: found '', expected: ',', ')' or identifier``.
    """
    try:
        return _sorted_selector(_Parser(text).parse())
    except _SelectorError as e:
        raise bad_request(e.message) from None


def selector_from_map(labels: Mapping[str, str] | None) -> LabelSelector:
    """The selector matching exactly ``labels`` (a Service's ``spec.selector``).

    Keys are sorted (``str()`` gives ``a=b,c=d``); no validation. None or ``{}`` gives
    the empty selector, which matches everything — callers that treat an empty Service
    selector as "selects no pods" must check :attr:`LabelSelector.empty` themselves.
    """
    reqs = (Requirement(k, Operator.EQUALS, (v,)) for k, v in (labels or {}).items())
    return _sorted_selector(reqs)


# --- structured selectors (metav1.LabelSelector) -----------------------------------------

_STRUCTURED_OPERATORS = {"In": Operator.IN, "NotIn": Operator.NOT_IN,
                         "Exists": Operator.EXISTS, "DoesNotExist": Operator.DOES_NOT_EXIST}


def _expression_requirement(expr: Mapping[str, Any]) -> Requirement:
    raw_op = expr.get("operator", "")
    op = _STRUCTURED_OPERATORS.get(raw_op) if isinstance(raw_op, str) else None
    if op is None:
        raise _SelectorError(f"{_go_quote(str(raw_op))} is not a valid label selector operator")
    values = [str(v) for v in (expr.get("values") or [])]
    return _new_requirement(str(expr.get("key", "")), op, values)


def _structured_requirements(sel: Mapping[str, Any]) -> list[Requirement]:
    match_labels: Mapping[str, Any] = sel.get("matchLabels") or {}
    reqs = [_new_requirement(str(k), Operator.EQUALS, [str(v)]) for k, v in match_labels.items()]
    reqs += [_expression_requirement(e) for e in sel.get("matchExpressions") or []]
    return reqs


def selector_from_label_selector_object(
    sel: Mapping[str, Any] | None, *, nil_matches_everything: bool = False
) -> LabelSelector:
    """Convert a structured ``{"matchLabels", "matchExpressions"}`` selector.

    Semantics follow ``metav1.LabelSelectorAsSelector``: ``{}`` (no labels, no
    expressions) matches everything; None (the field absent/null) matches nothing —
    pass ``nil_matches_everything=True`` where an absent selector means "all" (e.g. an
    optional pod selector). Operators are ``In``, ``NotIn``, ``Exists``,
    ``DoesNotExist``; requirements are sorted by key.

    Raises APIError 400 BadRequest for an unknown operator
    (``"Foo" is not a valid label selector operator``) or invalid keys/values.
    """
    if sel is None:
        return LabelSelector.everything() if nil_matches_everything else LabelSelector.nothing()
    try:
        return _sorted_selector(_structured_requirements(sel))
    except _SelectorError as e:
        raise bad_request(e.message) from None


def format_label_selector_object(sel: Mapping[str, Any] | None) -> str:
    """Render a structured selector as kubectl does (``metav1.FormatLabelSelector``).

    ``app=web,tier in (a,b),!x`` — requirements sorted by key, set values sorted;
    ``<none>`` for None or an empty selector; ``<error>`` when it cannot be converted.
    """
    try:
        text = str(selector_from_label_selector_object(sel))
    except APIError:
        return "<error>"
    return text or "<none>"


# --- field selectors ---------------------------------------------------------------------


def escape_field_value(value: str) -> str:
    """Escape ``\\``, ``,`` and ``=`` for use as a field selector value."""
    return value.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=")


def _unescape_char_after_slash(ch: str) -> str:
    if ch in "\\,=":
        return ch
    raise _SelectorError(f"invalid field selector: invalid escape sequence: \\{ch}")


def unescape_field_value(text: str) -> str:
    """Undo :func:`escape_field_value`.

    Raises APIError 400 for an unknown escape (``invalid field selector: invalid escape
    sequence: \\x``) or a bare ``,``/``=`` (``invalid field selector: unescaped character
    in value: 61`` — the code point, as upstream prints it).
    """
    try:
        return _unescape(text)
    except _SelectorError as e:
        raise bad_request(e.message) from None


def _unescape(text: str) -> str:
    if not any(c in text for c in "\\,="):
        return text
    out: list[str] = []
    in_slash = False
    for ch in text:
        if in_slash:
            out.append(_unescape_char_after_slash(ch))
            in_slash = False
        elif ch == "\\":
            in_slash = True
        elif ch in ",=":
            raise _SelectorError(f"invalid field selector: unescaped character in value: {ord(ch)}")
        else:
            out.append(ch)
    if in_slash:
        raise _SelectorError("invalid field selector: invalid escape sequence: \\")
    return "".join(out)


@dataclass(frozen=True)
class FieldRequirement:
    """``field=value`` (``negated=False``) or ``field!=value``; ``value`` is unescaped."""

    field: str
    value: str
    negated: bool = False

    def matches(self, actual: str) -> bool:
        return (actual != self.value) if self.negated else (actual == self.value)

    def __str__(self) -> str:
        return self.field + ("!=" if self.negated else "=") + escape_field_value(self.value)


@dataclass(frozen=True)
class FieldSelector:
    """An AND of :class:`FieldRequirement` s, in the order upstream sorts the raw terms."""

    terms: tuple[FieldRequirement, ...] = ()

    @property
    def empty(self) -> bool:
        """True when the selector does not restrict anything."""
        return not self.terms

    def matches(self, obj: Mapping[str, Any], kind: str) -> bool:
        """Whether ``obj`` (an API object dict of ``kind``) satisfies every term.

        Field values are read as the API server exposes them for ``kind`` (see
        :func:`supported_fields`); a field the kind does not expose reads as ``""``, so
        validate with :func:`validate_field_selector` first.
        """
        return all(t.matches(_field_value(obj, kind, t.field)) for t in self.terms)

    def requires_exact_match(self, field: str) -> str | None:
        """The value of the first ``field=value`` term, or None (upstream semantics)."""
        for t in self.terms:
            if t.field == field and not t.negated:
                return t.value
        return None

    def exact_name(self) -> str | None:
        """``X`` when the selector is exactly ``metadata.name=X`` (one term), else None.

        The API server may then answer a list with a single get; the result is still
        exactly what :meth:`matches` would keep.
        """
        if len(self.terms) == 1 and self.terms[0].field == "metadata.name":
            return self.requires_exact_match("metadata.name")
        return None

    def __str__(self) -> str:
        """Canonical form: terms joined by ``,``, values escaped, ``==`` written ``=``."""
        return ",".join(str(t) for t in self.terms)


def _split_terms(text: str) -> list[str]:
    """Split on ``,`` not preceded by a backslash (escapes stay in the terms)."""
    if not text:
        return []
    terms: list[str] = []
    start = 0
    in_slash = False
    for i, ch in enumerate(text):
        if in_slash:
            in_slash = False
        elif ch == "\\":
            in_slash = True
        elif ch == ",":
            terms.append(text[start:i])
            start = i + 1
    terms.append(text[start:])
    return terms


def _split_term(term: str) -> tuple[str, str, str] | None:
    """``(field, operator, raw value)`` at the first operator in ``term``, or None."""
    for i in range(len(term)):
        for op in ("!=", "==", "="):
            if term.startswith(op, i):
                return term[:i], op, term[i + len(op):]
    return None


def _field_term(selector: str, part: str) -> FieldRequirement:
    split = _split_term(part)
    if split is None:
        raise _SelectorError(f"invalid selector: '{selector}'; can't understand '{part}'")
    field, op, raw = split
    return FieldRequirement(field, _unescape(raw), negated=op == "!=")


def parse_field_selector(text: str) -> FieldSelector:
    """Parse the ``fieldSelector`` parameter (apimachinery ``fields.ParseSelector``).

    Terms are joined by ``,`` (AND; ``\\,`` is a literal comma) and sorted; each is
    ``field=value``, ``field==value`` or ``field!=value``, split at the first operator;
    values are unescaped (``\\,`` ``\\=`` ``\\\\``). No whitespace is trimmed. Empty
    terms are skipped, so ``""`` selects everything. Field names are not checked here:
    see :func:`validate_field_selector`.

    Raises APIError 400 BadRequest, e.g. ``invalid selector: 'x'; can't understand 'x'``.
    """
    try:
        parts = sorted(p for p in _split_terms(text) if p)
        return FieldSelector(tuple(_field_term(text, p) for p in parts))
    except _SelectorError as e:
        raise bad_request(e.message) from None


# --- per-kind field support --------------------------------------------------------------

_Extractor = Callable[[Mapping[str, Any]], str]


def _lookup(obj: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    cur: Any = obj
    for key in path:
        if not isinstance(cur, Mapping):
            return None
        cur = cur.get(key)
    return cur


def _render(value: Any, default: str) -> str:
    if value is None:
        return default
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _at(dotted: str, default: str = "") -> _Extractor:
    path = tuple(dotted.split("."))
    return lambda obj: _render(_lookup(obj, path), default)


def _pod_ip(obj: Mapping[str, Any]) -> str:
    ips = _lookup(obj, ("status", "podIPs"))
    if isinstance(ips, list) and ips and isinstance(ips[0], Mapping):
        return _render(ips[0].get("ip"), "")
    return _render(_lookup(obj, ("status", "podIP")), "")


def _event_source(obj: Mapping[str, Any]) -> str:
    return _render(_lookup(obj, ("source", "component")), "") or _at("reportingComponent")(obj)


def _blank(obj: Mapping[str, Any]) -> str:
    return ""


def _extractors(*fields: str) -> dict[str, _Extractor]:
    return {f: _at(f) for f in fields}


@dataclass(frozen=True)
class _KindFields:
    """Which field labels a kind accepts (label -> canonical field), how each is read
    from an object, and the message for an unsupported label."""

    aliases: Mapping[str, str]
    extract: Mapping[str, _Extractor]
    reject: Callable[[str], str]


def _not_supported(label: str) -> str:
    return f"field label not supported: {label}"


def _default_reject(label: str) -> str:
    return f'{_go_quote(label)} is not a known field selector: only "metadata.name", "metadata.namespace"'


def _kind(extract: dict[str, _Extractor], aliases: Mapping[str, str] | None = None,
          reject: Callable[[str], str] = _not_supported) -> _KindFields:
    accepted = {f: f for f in extract}
    accepted.update(aliases or {})
    return _KindFields(accepted, extract, reject)


_META = _extractors("metadata.name", "metadata.namespace")
_NAME = _extractors("metadata.name")

_KINDS: dict[str, _KindFields] = {
    "Pod": _kind({
        **_META,
        **_extractors("spec.nodeName", "spec.restartPolicy", "spec.schedulerName",
                      "spec.serviceAccountName", "status.phase", "status.nominatedNodeName"),
        "spec.hostNetwork": _at("spec.hostNetwork", "false"),
        "status.podIP": _pod_ip,
        "status.podIPs": _blank,  # accepted upstream but never populated: reads as ""
    }, aliases={"spec.host": "spec.nodeName"}),
    "Node": _kind({**_NAME, "spec.unschedulable": _at("spec.unschedulable", "false")}),
    "Namespace": _kind({**_NAME, **_extractors("status.phase")}),
    "Event": _kind({
        **_META,
        **_extractors("involvedObject.kind", "involvedObject.namespace", "involvedObject.name",
                      "involvedObject.uid", "involvedObject.apiVersion",
                      "involvedObject.resourceVersion", "involvedObject.fieldPath", "reason",
                      "reportingComponent", "type"),
        "source": _event_source,
    }),
    "Secret": _kind({**_META, **_extractors("type")}),
    "Service": _kind({**_META, **_extractors("spec.clusterIP", "spec.type")}),
    "ReplicaSet": _kind({**_META, "status.replicas": _at("status.replicas", "0")}),
}
_DEFAULT_KIND = _kind(dict(_META), reject=_default_reject)


def _kind_fields(kind: str) -> _KindFields:
    return _KINDS.get(kind, _DEFAULT_KIND)


def supported_fields(kind: str) -> tuple[str, ...]:
    """The field labels ``kind`` accepts in a field selector (aliases included), sorted.

    ``kind`` is the served kind name (``Pod``, ``Event`` for core/v1 events, ...); any
    kind without its own list supports ``metadata.name`` and ``metadata.namespace``.
    """
    return tuple(sorted(_kind_fields(kind).aliases))


def _field_value(obj: Mapping[str, Any], kind: str, field: str) -> str:
    rules = _kind_fields(kind)
    extractor = rules.extract.get(rules.aliases.get(field, field))
    return extractor(obj) if extractor is not None else ""


def validate_field_selector(sel: FieldSelector, kind: str) -> FieldSelector:
    """Check every field of ``sel`` is supported by ``kind``; return it with deprecated
    aliases rewritten (Pod ``spec.host`` -> ``spec.nodeName``).

    Raises APIError 400 BadRequest for the first unsupported field, with the API
    server's text: ``field label not supported: <field>`` for kinds with their own list
    (Pod, Node, Namespace, Event, Secret, Service, ReplicaSet), otherwise
    ``"<field>" is not a known field selector: only "metadata.name", "metadata.namespace"``.
    """
    rules = _kind_fields(kind)
    terms: list[FieldRequirement] = []
    for term in sel.terms:
        canonical = rules.aliases.get(term.field)
        if canonical is None:
            raise bad_request(rules.reject(term.field))
        terms.append(replace(term, field=canonical))
    return FieldSelector(tuple(terms))
