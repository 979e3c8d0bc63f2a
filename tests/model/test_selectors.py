"""Label and field selectors: parsing, canonical form, matching, per-kind fields, errors."""

from __future__ import annotations

from typing import Any

import pytest

from svcnet.model.errors import APIError
from svcnet.model.selectors import (
    FieldSelector,
    LabelSelector,
    escape_field_value,
    format_label_selector_object,
    parse_field_selector,
    parse_label_selector,
    selector_from_label_selector_object,
    selector_from_map,
    supported_fields,
    unescape_field_value,
    validate_field_selector,
)

# --- label selectors: canonical form -------------------------------------------------------

CANONICAL = [
    ("kubectl-l", "app=web", "app=web"),
    ("kubectl-in-and-not-equals", "app in (web),tier!=be", "app in (web),tier!=be"),
    ("double-equals-kept", "app==web", "app==web"),
    ("service-name-prefixed-key", "kubernetes.io/service-name=websvc",
     "kubernetes.io/service-name=websvc"),
    ("prefixed-key", "app.kubernetes.io/name=web", "app.kubernetes.io/name=web"),
    ("sorted-by-key", "z=1,a=2,m", "a=2,m,z=1"),
    ("exists-and-not-exists", "canary,!legacy", "canary,!legacy"),
    ("set-values-sorted-deduplicated", "tier in (c,a,b,a)", "tier in (a,b,c)"),
    ("notin", "env notin (prod, staging)", "env notin (prod,staging)"),
    ("whitespace-tolerated", "  app =  web ,\ttier\n!= be ", "app=web,tier!=be"),
    ("gt-lt", "rank>3,size<10", "rank>3,size<10"),
    ("empty-value", "app=", "app="),
    ("empty-value-before-comma", "app=,tier=x", "app=,tier=x"),
    ("empty-set", "app in ()", "app in ()"),
    ("empty-members-in-set", "x in (foo,,baz)", "x in (,baz,foo)"),
    ("keywords-as-key-and-value", "in in (in,notin)", "in in (in,notin)"),
    ("empty-string", "", ""),
    ("only-whitespace", "   ", ""),
]


@pytest.mark.parametrize(("text", "canonical"), [c[1:] for c in CANONICAL],
                         ids=[c[0] for c in CANONICAL])
def test_label_selector_canonical_form(text: str, canonical: str) -> None:
    assert str(parse_label_selector(text)) == canonical


@pytest.mark.parametrize("text", [c[2] for c in CANONICAL], ids=[c[0] for c in CANONICAL])
def test_label_selector_canonical_form_round_trips(text: str) -> None:
    assert str(parse_label_selector(text)) == text


# --- label selectors: matching -------------------------------------------------------------

WEB = {"app": "web", "tier": "fe", "rank": "5"}
MATCHES = [
    ("equals-hit", "app=web", WEB, True),
    ("equals-miss", "app=db", WEB, False),
    ("equals-missing-key", "team=a", WEB, False),
    ("double-equals", "app==web", WEB, True),
    ("not-equals-hit", "tier!=be", WEB, True),
    ("not-equals-miss", "tier!=fe", WEB, False),
    ("not-equals-missing-key-matches", "team!=a", WEB, True),
    ("in-hit", "app in (db,web)", WEB, True),
    ("in-miss", "app in (db,cache)", WEB, False),
    ("in-missing-key", "team in (a)", WEB, False),
    ("notin-hit", "app notin (db)", WEB, True),
    ("notin-miss", "app notin (web)", WEB, False),
    ("notin-missing-key-matches", "team notin (a)", WEB, True),
    ("exists", "tier", WEB, True),
    ("exists-missing", "team", WEB, False),
    ("not-exists", "!team", WEB, True),
    ("not-exists-present", "!tier", WEB, False),
    ("and-all-hold", "app in (web),tier!=be", WEB, True),
    ("and-one-fails", "app in (web),tier!=fe", WEB, False),
    ("gt-hit", "rank>3", WEB, True),
    ("gt-equal-is-miss", "rank>5", WEB, False),
    ("lt-hit", "rank<6", WEB, True),
    ("lt-miss", "rank<5", WEB, False),
    ("gt-missing-key", "size>1", WEB, False),
    ("gt-non-integer-label", "app>1", WEB, False),
    ("empty-value-matches-empty-label", "app=", {"app": ""}, True),
    ("empty-set-matches-empty-label", "app in ()", {"app": ""}, True),
    ("empty-selector-matches-all", "", WEB, True),
    ("none-labels-empty-selector", "", None, True),
    ("none-labels-equals", "app=web", None, False),
    ("none-labels-not-exists", "!app", None, True),
    ("none-labels-not-equals", "app!=web", None, True),
    ("prefixed-key", "kubernetes.io/service-name=websvc",
     {"kubernetes.io/service-name": "websvc"}, True),
]


@pytest.mark.parametrize(("text", "labels", "expected"), [m[1:] for m in MATCHES],
                         ids=[m[0] for m in MATCHES])
def test_label_selector_matches(text: str, labels: dict[str, str] | None,
                                expected: bool) -> None:
    assert parse_label_selector(text).matches(labels) is expected


# --- label selectors: errors ---------------------------------------------------------------

NAME_REGEX = "'([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]'"
VALUE_MSG = ("a valid label must be an empty string or consist of alphanumeric characters, "
             "'-', '_' or '.', and must start and end with an alphanumeric character "
             "(e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is "
             "'(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')")
LABEL_ERRORS = [
    ("unclosed-set", "app in (web",
     "unable to parse requirement: found '', expected: ',' or ')'"),
    ("in-without-paren", "app in web",
     "unable to parse requirement: found 'web' expected: '('"),
    ("set-starts-with-operator", "app in (=)",
     "unable to parse requirement: found '=', expected: ',', ')' or identifier"),
    ("missing-operator", "app web",
     "unable to parse requirement: found 'web', expected: in, notin, =, ==, !=, gt, lt"),
    ("value-is-operator", "app=(",
     "unable to parse requirement: found '(', expected: identifier"),
    ("bang-without-key", "!",
     "unable to parse requirement: found '', expected: identifier"),
    ("leading-comma", ",app", "found ',', expected: !, identifier, or 'end of string'"),
    ("trailing-comma", "app=web,", "found '', expected: identifier after ','"),
    ("not-exists-with-value", "!app=web", "found '=', expected: ',' or 'end of string'"),
    ("two-values", "app=web db", "found 'db', expected: ',' or 'end of string'"),
    ("bad-key", "-app=web",
     "unable to parse requirement: <nil>: Invalid value: \"-app\": name part must consist of "
     "alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric "
     f"character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is "
     f"{NAME_REGEX})"),
    ("empty-prefix", "/app", "unable to parse requirement: <nil>: Invalid value: \"/app\": "
     "prefix part must be non-empty"),
    ("bad-value", "app=we b!",
     "found 'b', expected: ',' or 'end of string'"),
    ("invalid-value-chars", "app=-web",
     f"unable to parse requirement: values[0][app]: Invalid value: \"-web\": {VALUE_MSG}"),
    ("gt-non-integer", "rank>x", "unable to parse requirement: values[0]: Invalid value: "
     "\"x\": for 'Gt', 'Lt' operators, the value must be an integer"),
    ("gt-negative-is-not-a-label-value", "rank>-1",
     f"unable to parse requirement: values[0][rank]: Invalid value: \"-1\": {VALUE_MSG}"),
    ("value-too-long", "app=" + "a" * 64,
     "unable to parse requirement: values[0][app]: Invalid value: \"" + "a" * 64
     + "\": must be no more than 63 characters"),
]


@pytest.mark.parametrize(("text", "message"), [e[1:] for e in LABEL_ERRORS],
                         ids=[e[0] for e in LABEL_ERRORS])
def test_label_selector_errors(text: str, message: str) -> None:
    with pytest.raises(APIError) as info:
        parse_label_selector(text)
    assert (info.value.code, info.value.reason) == (400, "BadRequest")
    assert info.value.message == message


def test_requires_exact_match() -> None:
    sel = parse_label_selector("app in (web),tier in (a,b),x=1")
    assert sel.requires_exact_match("app") == "web"
    assert sel.requires_exact_match("tier") is None
    assert sel.requires_exact_match("x") == "1"
    assert sel.requires_exact_match("missing") is None


# --- selector_from_map -----------------------------------------------------------------------

FROM_MAP = [
    ("sorted", {"tier": "fe", "app": "web"}, "app=web,tier=fe"),
    ("single", {"app": "web"}, "app=web"),
    ("empty", {}, ""),
    ("none", None, ""),
]


@pytest.mark.parametrize(("labels", "text"), [f[1:] for f in FROM_MAP],
                         ids=[f[0] for f in FROM_MAP])
def test_selector_from_map_string(labels: dict[str, str] | None, text: str) -> None:
    assert str(selector_from_map(labels)) == text


def test_selector_from_map_matches_superset_only() -> None:
    sel = selector_from_map({"app": "web", "tier": "fe"})
    assert sel.matches({"app": "web", "tier": "fe", "extra": "1"})
    assert not sel.matches({"app": "web"})
    assert selector_from_map({}).empty and selector_from_map({}).matches(None)


# --- structured selectors ------------------------------------------------------------------

STRUCTURED: list[tuple[str, dict[str, Any] | None, str]] = [
    ("match-labels", {"matchLabels": {"app": "web"}}, "app=web"),
    ("labels-and-expressions-sorted", {
        "matchLabels": {"app": "web"},
        "matchExpressions": [
            {"key": "x", "operator": "DoesNotExist"},
            {"key": "tier", "operator": "In", "values": ["b", "a"]},
            {"key": "env", "operator": "NotIn", "values": ["prod"]},
            {"key": "canary", "operator": "Exists"},
        ]}, "app=web,canary,env notin (prod),tier in (a,b),!x"),
    ("empty-object", {}, "<none>"),
    ("null-parts", {"matchLabels": None, "matchExpressions": None}, "<none>"),
    ("nil", None, "<none>"),
    ("bad-operator", {"matchExpressions": [{"key": "a", "operator": "Gt", "values": ["1"]}]},
     "<error>"),
    ("in-without-values", {"matchExpressions": [{"key": "a", "operator": "In"}]}, "<error>"),
]


@pytest.mark.parametrize(("sel", "text"), [s[1:] for s in STRUCTURED],
                         ids=[s[0] for s in STRUCTURED])
def test_format_label_selector_object(sel: dict[str, Any] | None, text: str) -> None:
    assert format_label_selector_object(sel) == text


STRUCTURED_MATCH: list[tuple[str, dict[str, Any] | None, bool, dict[str, str] | None, bool]] = [
    ("labels-hit", {"matchLabels": {"app": "web"}}, False, {"app": "web"}, True),
    ("labels-miss", {"matchLabels": {"app": "web"}}, False, {"app": "db"}, False),
    ("in-hit", {"matchExpressions": [{"key": "t", "operator": "In", "values": ["a", "b"]}]},
     False, {"t": "b"}, True),
    ("notin-missing-key", {"matchExpressions": [
        {"key": "t", "operator": "NotIn", "values": ["a"]}]}, False, {}, True),
    ("does-not-exist", {"matchExpressions": [{"key": "t", "operator": "DoesNotExist"}]},
     False, {"t": "x"}, False),
    ("empty-matches-everything", {}, False, {"any": "x"}, True),
    ("empty-matches-unlabelled", {}, False, None, True),
    ("nil-matches-nothing", None, False, {"any": "x"}, False),
    ("nil-matches-everything-when-asked", None, True, {"any": "x"}, True),
]


@pytest.mark.parametrize(("sel", "nil_all", "labels", "expected"),
                         [s[1:] for s in STRUCTURED_MATCH], ids=[s[0] for s in STRUCTURED_MATCH])
def test_structured_selector_matches(sel: dict[str, Any] | None, nil_all: bool,
                                     labels: dict[str, str] | None, expected: bool) -> None:
    selector = selector_from_label_selector_object(sel, nil_matches_everything=nil_all)
    assert selector.matches(labels) is expected


def test_nil_selector_is_not_empty_but_renders_blank() -> None:
    nothing = selector_from_label_selector_object(None)
    assert nothing == LabelSelector.nothing()
    assert not nothing.empty and str(nothing) == ""
    assert selector_from_label_selector_object({}).empty


STRUCTURED_ERRORS = [
    ("unknown-operator", {"matchExpressions": [{"key": "a", "operator": "Gt"}]},
     '"Gt" is not a valid label selector operator'),
    ("in-without-values", {"matchExpressions": [{"key": "a", "operator": "In"}]},
     "values: Invalid value: null: for 'in', 'notin' operators, values set can't be empty"),
    ("exists-with-values", {"matchExpressions": [
        {"key": "a", "operator": "Exists", "values": ["x"]}]},
     'values: Invalid value: ["x"]: values set must be empty for exists and does not exist'),
    ("bad-label-key", {"matchLabels": {"a b": "x"}},
     "key: Invalid value: \"a b\": name part must consist of alphanumeric characters, '-', "
     "'_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or "
     f"'my.name',  or '123-abc', regex used for validation is {NAME_REGEX})"),
]


@pytest.mark.parametrize(("sel", "message"), [s[1:] for s in STRUCTURED_ERRORS],
                         ids=[s[0] for s in STRUCTURED_ERRORS])
def test_structured_selector_errors(sel: dict[str, Any], message: str) -> None:
    with pytest.raises(APIError) as info:
        selector_from_label_selector_object(sel)
    assert info.value.code == 400
    assert info.value.message == message


# --- field selectors: parsing ----------------------------------------------------------------

FIELD_CANONICAL = [
    ("kubectl-name", "metadata.name=p1", "metadata.name=p1"),
    ("describe-node-sorted", "spec.nodeName=node1,status.phase!=Succeeded,status.phase!=Failed",
     "spec.nodeName=node1,status.phase!=Failed,status.phase!=Succeeded"),
    ("double-equals-normalised", "status.phase==Running", "status.phase=Running"),
    ("escaped-comma-and-equals", r"metadata.name=a\,b\=c", r"metadata.name=a\,b\=c"),
    ("escaped-backslash", r"metadata.name=a\\b", r"metadata.name=a\\b"),
    ("empty-terms-skipped", ",metadata.name=a,", "metadata.name=a"),
    ("empty-value", "spec.nodeName=", "spec.nodeName="),
    ("empty", "", ""),
]


@pytest.mark.parametrize(("text", "canonical"), [f[1:] for f in FIELD_CANONICAL],
                         ids=[f[0] for f in FIELD_CANONICAL])
def test_field_selector_canonical_form(text: str, canonical: str) -> None:
    assert str(parse_field_selector(text)) == canonical


def test_field_selector_unescapes_values() -> None:
    sel = parse_field_selector(r"metadata.name=a\,b\=c\\d")
    assert [(t.field, t.value, t.negated) for t in sel.terms] == [
        ("metadata.name", "a,b=c\\d", False)]


FIELD_ERRORS = [
    ("no-operator", "metadata.name", "invalid selector: 'metadata.name'; can't understand "
     "'metadata.name'"),
    ("second-term-without-operator", "a=b,c", "invalid selector: 'a=b,c'; can't understand 'c'"),
    ("unescaped-equals", "a=b=c", "invalid field selector: unescaped character in value: 61"),
    ("unknown-escape", r"a=b\q", r"invalid field selector: invalid escape sequence: \q"),
    ("trailing-backslash", "a=b\\", "invalid field selector: invalid escape sequence: \\"),
]


@pytest.mark.parametrize(("text", "message"), [f[1:] for f in FIELD_ERRORS],
                         ids=[f[0] for f in FIELD_ERRORS])
def test_field_selector_errors(text: str, message: str) -> None:
    with pytest.raises(APIError) as info:
        parse_field_selector(text)
    assert (info.value.code, info.value.reason) == (400, "BadRequest")
    assert info.value.message == message


ESCAPES = [("plain", "abc"), ("comma", "a,b"), ("equals", "a=b"), ("backslash", "a\\b"),
           ("all", "\\,=\\\\")]


@pytest.mark.parametrize("value", [e[1] for e in ESCAPES], ids=[e[0] for e in ESCAPES])
def test_escape_round_trip(value: str) -> None:
    escaped = escape_field_value(value)
    assert unescape_field_value(escaped) == value
    term = parse_field_selector("metadata.name=" + escaped).terms[0]
    assert term.value == value


# --- field selectors: per-kind values --------------------------------------------------------

POD: dict[str, Any] = {
    "metadata": {"name": "web-1", "namespace": "default"},
    "spec": {"nodeName": "node1", "restartPolicy": "Always", "schedulerName": "default-scheduler",
             "serviceAccountName": "default"},
    "status": {"phase": "Running", "podIP": "10.0.0.9", "podIPs": [{"ip": "10.0.0.7"}],
               "nominatedNodeName": "node2"},
}
EVENT: dict[str, Any] = {
    "metadata": {"name": "web.1", "namespace": "default"},
    "involvedObject": {"kind": "Deployment", "namespace": "default", "name": "web",
                       "uid": "u-1", "apiVersion": "apps/v1", "resourceVersion": "7",
                       "fieldPath": "spec"},
    "reason": "ScalingReplicaSet", "type": "Normal",
    "source": {"component": "deployment-controller"}, "reportingComponent": "rc",
}
FIELD_MATCHES: list[tuple[str, str, dict[str, Any], str, bool]] = [
    ("pod-describe-node", "Pod", POD,
     "status.phase!=Succeeded,status.phase!=Failed,spec.nodeName=node1", True),
    ("pod-other-node", "Pod", POD, "spec.nodeName=node2", False),
    ("pod-phase-succeeded-excluded", "Pod", {**POD, "status": {"phase": "Succeeded"}},
     "status.phase!=Succeeded,status.phase!=Failed", False),
    ("pod-name", "Pod", POD, "metadata.name=web-1", True),
    ("pod-namespace", "Pod", POD, "metadata.namespace=kube-system", False),
    ("pod-restart-policy", "Pod", POD, "spec.restartPolicy=Always", True),
    ("pod-scheduler", "Pod", POD, "spec.schedulerName=default-scheduler", True),
    ("pod-service-account", "Pod", POD, "spec.serviceAccountName=default", True),
    ("pod-host-network-defaults-false", "Pod", POD, "spec.hostNetwork=false", True),
    ("pod-host-network-true", "Pod", {**POD, "spec": {"hostNetwork": True}},
     "spec.hostNetwork=true", True),
    ("pod-ip-from-pod-ips", "Pod", POD, "status.podIP=10.0.0.7", True),
    ("pod-ip-fallback", "Pod", {**POD, "status": {"podIP": "10.0.0.9"}},
     "status.podIP=10.0.0.9", True),
    ("pod-nominated-node", "Pod", POD, "status.nominatedNodeName=node2", True),
    ("pod-spec-host-alias", "Pod", POD, "spec.host=node1", True),
    ("pod-missing-field-is-empty", "Pod", {"metadata": {"name": "x"}}, "spec.nodeName=", True),
    ("event-describe", "Event", EVENT,
     "involvedObject.name=web,involvedObject.namespace=default,"
     "involvedObject.kind=Deployment,involvedObject.uid=u-1", True),
    ("event-other-uid", "Event", EVENT, "involvedObject.kind=Deployment,involvedObject.uid=u-2",
     False),
    ("event-api-version", "Event", EVENT, "involvedObject.apiVersion=apps/v1", True),
    ("event-resource-version", "Event", EVENT, "involvedObject.resourceVersion=7", True),
    ("event-field-path", "Event", EVENT, "involvedObject.fieldPath=spec", True),
    ("event-reason-type", "Event", EVENT, "reason=ScalingReplicaSet,type=Normal", True),
    ("event-reporting-component", "Event", EVENT, "reportingComponent=rc", True),
    ("event-source-component", "Event", EVENT, "source=deployment-controller", True),
    ("event-source-falls-back", "Event", {**EVENT, "source": {}}, "source=rc", True),
    ("secret-type", "Secret", {"type": "Opaque"}, "type=Opaque", True),
    ("node-unschedulable-default", "Node", {"spec": {}}, "spec.unschedulable=false", True),
    ("node-unschedulable-true", "Node", {"spec": {"unschedulable": True}},
     "spec.unschedulable=true", True),
    ("namespace-phase", "Namespace", {"status": {"phase": "Active"}}, "status.phase=Active",
     True),
    ("replicaset-replicas", "ReplicaSet", {"status": {"replicas": 3}}, "status.replicas=3", True),
    ("replicaset-replicas-default", "ReplicaSet", {}, "status.replicas=0", True),
    ("service-cluster-ip-and-type", "Service",
     {"spec": {"clusterIP": "10.96.0.10", "type": "ClusterIP"}},
     "spec.clusterIP=10.96.0.10,spec.type=ClusterIP", True),
    ("deployment-name", "Deployment", {"metadata": {"name": "web"}}, "metadata.name=web", True),
    ("escaped-name", "ConfigMap", {"metadata": {"name": "a,b"}}, r"metadata.name=a\,b", True),
    ("empty-selector", "Pod", POD, "", True),
]


@pytest.mark.parametrize(("kind", "obj", "text", "expected"), [f[1:] for f in FIELD_MATCHES],
                         ids=[f[0] for f in FIELD_MATCHES])
def test_field_selector_matches(kind: str, obj: dict[str, Any], text: str,
                                expected: bool) -> None:
    assert parse_field_selector(text).matches(obj, kind) is expected


# --- field selectors: validation per kind ----------------------------------------------------

DEFAULT_REJECT = ' is not a known field selector: only "metadata.name", "metadata.namespace"'
VALIDATION: list[tuple[str, str, str, str | None]] = [
    ("pod-describe-node", "Pod", "spec.nodeName=n,status.phase!=Failed", None),
    ("pod-all-fields", "Pod", "spec.restartPolicy=a,spec.schedulerName=b,"
     "spec.serviceAccountName=c,spec.hostNetwork=true,status.podIP=d,status.podIPs=e,"
     "status.nominatedNodeName=f,metadata.name=g,metadata.namespace=h", None),
    ("pod-unknown", "Pod", "spec.foo=x", "field label not supported: spec.foo"),
    ("event-describe", "Event", "involvedObject.name=web,involvedObject.namespace=default,"
     "involvedObject.kind=Deployment,involvedObject.uid=u", None),
    ("event-unknown", "Event", "message=x", "field label not supported: message"),
    ("secret-type", "Secret", "type=Opaque", None),
    ("node-unschedulable", "Node", "spec.unschedulable=true", None),
    ("node-rejects-namespace", "Node", "metadata.namespace=x",
     "field label not supported: metadata.namespace"),
    ("namespace-phase", "Namespace", "status.phase=Active", None),
    ("namespace-rejects-namespace", "Namespace", "metadata.namespace=x",
     "field label not supported: metadata.namespace"),
    ("replicaset-replicas", "ReplicaSet", "status.replicas=0", None),
    ("service-cluster-ip", "Service", "spec.clusterIP=None,spec.type=ClusterIP", None),
    ("service-unknown", "Service", "spec.ports=x", "field label not supported: spec.ports"),
    ("deployment-default", "Deployment", "metadata.name=a,metadata.namespace=b", None),
    ("deployment-unknown", "Deployment", "spec.replicas=1", '"spec.replicas"' + DEFAULT_REJECT),
    ("first-sorted-bad-field-reported", "ConfigMap", "z=1,b=2", '"b"' + DEFAULT_REJECT),
    ("whitespace-is-part-of-field", "Pod", "spec.nodeName =x",
     "field label not supported: spec.nodeName "),
]


@pytest.mark.parametrize(("kind", "text", "message"), [v[1:] for v in VALIDATION],
                         ids=[v[0] for v in VALIDATION])
def test_validate_field_selector(kind: str, text: str, message: str | None) -> None:
    sel = parse_field_selector(text)
    if message is None:
        assert validate_field_selector(sel, kind) == sel
        return
    with pytest.raises(APIError) as info:
        validate_field_selector(sel, kind)
    assert (info.value.code, info.value.reason) == (400, "BadRequest")
    assert info.value.message == message


def test_validate_rewrites_pod_spec_host() -> None:
    sel = validate_field_selector(parse_field_selector("spec.host=node1"), "Pod")
    assert str(sel) == "spec.nodeName=node1"


SUPPORTED = [
    ("default", "ConfigMap", ("metadata.name", "metadata.namespace")),
    ("node", "Node", ("metadata.name", "spec.unschedulable")),
    ("secret", "Secret", ("metadata.name", "metadata.namespace", "type")),
]


@pytest.mark.parametrize(("kind", "fields"), [s[1:] for s in SUPPORTED],
                         ids=[s[0] for s in SUPPORTED])
def test_supported_fields(kind: str, fields: tuple[str, ...]) -> None:
    assert supported_fields(kind) == fields


# --- exact_name ------------------------------------------------------------------------------

EXACT_NAME: list[tuple[str, str, str | None]] = [
    ("single-name", "metadata.name=p1", "p1"),
    ("double-equals", "metadata.name==p1", "p1"),
    ("escaped", r"metadata.name=a\,b", "a,b"),
    ("negated", "metadata.name!=p1", None),
    ("with-other-term", "metadata.name=p1,metadata.namespace=default", None),
    ("other-field", "spec.nodeName=n", None),
    ("empty", "", None),
]


@pytest.mark.parametrize(("text", "name"), [e[1:] for e in EXACT_NAME],
                         ids=[e[0] for e in EXACT_NAME])
def test_exact_name(text: str, name: str | None) -> None:
    assert parse_field_selector(text).exact_name() == name


def test_requires_exact_match_on_field_selector() -> None:
    sel = parse_field_selector("metadata.name=p1,spec.nodeName!=n")
    assert sel.requires_exact_match("metadata.name") == "p1"
    assert sel.requires_exact_match("spec.nodeName") is None
    assert FieldSelector().empty
