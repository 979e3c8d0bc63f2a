"""Indexer: keys, indexes kept in step, replace() as a relist diff."""

from __future__ import annotations

from svcnet.informer.cache import Indexer, by_owner_uid, object_key, split_key


def pod(name: str, ns: str = "default", rv: str = "1", owner: str = "") -> dict[str, object]:
    m: dict[str, object] = {"name": name, "namespace": ns, "resourceVersion": rv}
    if owner:
        m["ownerReferences"] = [{"uid": owner, "kind": "ReplicaSet", "name": "rs",
                                 "apiVersion": "apps/v1", "controller": True}]
    return {"metadata": m}


def test_keys() -> None:
    assert object_key(pod("a")) == "default/a"
    assert object_key({"metadata": {"name": "n1"}}) == "n1"
    assert split_key("default/a") == ("default", "a")
    assert split_key("n1") == (None, "n1")


def test_indexes_follow_updates_and_deletes() -> None:
    ix = Indexer({"owner": by_owner_uid})
    ix.upsert(pod("a", owner="u1"))
    ix.upsert(pod("b", owner="u1"))
    ix.upsert(pod("c", ns="other"))
    assert [object_key(p) for p in ix.by_index("owner", "u1")] == ["default/a", "default/b"]
    ix.upsert(pod("a", owner="u2", rv="2"))
    assert [object_key(p) for p in ix.by_index("owner", "u1")] == ["default/b"]
    ix.delete("default/b")
    assert ix.by_index("owner", "u1") == []
    assert [object_key(p) for p in ix.by_index("namespace", "default")] == ["default/a"]


def test_replace_reports_the_diff() -> None:
    ix = Indexer()
    ix.upsert(pod("keep"))
    ix.upsert(pod("gone"))
    added, updated, deleted = ix.replace([pod("keep", rv="2"), pod("new")])
    assert [object_key(o) for o in added] == ["default/new"]
    assert [(object_key(o), object_key(n)) for o, n in updated] == [("default/keep",
                                                                     "default/keep")]
    assert [object_key(o) for o in deleted] == ["default/gone"]
    assert sorted(ix.keys()) == ["default/keep", "default/new"]


def test_added_indexer_covers_existing_objects() -> None:
    ix = Indexer()
    ix.upsert(pod("a", owner="u1"))
    ix.add_indexer("owner", by_owner_uid)
    assert len(ix.by_index("owner", "u1")) == 1
