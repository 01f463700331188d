"""The registry's old module paths still work for one minor release, and warn."""

import sys

import pytest

from tta_agent_coordination import agents
from tta_agent_coordination.redis import agent_registry
from tta_agent_coordination.redis.agent_registry import codec, reads

OLD_PATHS = [
    (
        "tta_agent_coordination.registry_models",
        "tta_agent_coordination.agents",
        {name: getattr(agents, name) for name in agents.__all__},
    ),
    (
        "tta_agent_coordination.redis.registry",
        "tta_agent_coordination.redis.agent_registry",
        {
            "RedisAgentRegistry": agent_registry.RedisAgentRegistry,
            "LeaseReleaser": agent_registry.LeaseReleaser,
            "DEFAULT_STATUS": agent_registry.DEFAULT_STATUS,
        },
    ),
    (
        "tta_agent_coordination.redis.registry_codec",
        "tta_agent_coordination.redis.agent_registry.codec",
        {
            "capabilities_of": codec.capabilities_of,
            "decode_events": codec.decode_events,
            "decode_records": reads.decode_records,
            "dump_json": codec.dump_json,
            "ms_to_datetime": codec.ms_to_datetime,
            "normalise_capabilities": codec.normalise_capabilities,
            "normalise_status": codec.normalise_status,
            "snapshot_parts": codec.snapshot_parts,
        },
    ),
]


@pytest.mark.parametrize(("old", "new", "names"), OLD_PATHS, ids=[p[0] for p in OLD_PATHS])
def test_old_path_warns_and_gives_the_same_objects(monkeypatch, old, new, names):
    monkeypatch.delitem(sys.modules, old, raising=False)
    with pytest.warns(DeprecationWarning, match=f"^{old} is deprecated") as caught:
        __import__(old)  # an import statement's own path, unlike importlib.import_module
    module = sys.modules[old]
    assert [str(w.message) for w in caught] == [
        f"{old} is deprecated; import from {new} (the alias is removed in 0.3.0)"
    ]
    assert caught[0].filename == __file__  # stacklevel=2: the warning points at the importer
    assert sorted(module.__all__) == sorted(names)
    for name, value in names.items():
        assert getattr(module, name) is value


def test_decode_records_reads_the_read_script_result():
    ms = 1_700_000_000_000
    records = reads.decode_records(
        [
            *(ms, b"planner:p1", str(ms + 1).encode(), [b"name", b"P", b"status", b"busy"]),
            *(b"not an id", b"", []),
        ]
    )
    assert [(str(r.agent_id), r.name, r.status, r.alive) for r in records] == [
        ("planner:p1", "P", "busy", True)
    ]
