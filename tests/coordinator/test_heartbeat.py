"""Heartbeats are answered from memory and written in batches: nothing a node reports is lost."""

from __future__ import annotations

import time

from coordinator_net import Net

from heatshare.coordinator.models import NodeRow


def _beat(net: Net, token: str, state: str, energy_j: float, power_w: float) -> None:
    r = net.client.post(
        "/v1/nodes/me/heartbeat",
        json={"state": state, "telemetry": {"energy_j": energy_j, "power_w": power_w}},
        headers=net.auth(token),
    )
    assert r.status_code == 200, r.text
    assert r.json()["commands"] == []


def test_batched_heartbeats_keep_the_last_state_and_all_the_energy(net: Net) -> None:
    node_id, token = net.node()
    other_id, other_token = net.node()
    _beat(net, token, "working", 5.0, 100.0)
    _beat(net, other_token, "idle", 1.5, 20.0)
    net.coordinator.flush_heartbeats()
    _beat(net, token, "idle", 7.0, 30.0)
    _beat(net, token, "paused", 11.0, 40.0)
    net.coordinator.flush_heartbeats()
    with net.coordinator.reading() as s:
        node = s.get(NodeRow, node_id)
        other = s.get(NodeRow, other_id)
        assert node is not None and other is not None
        assert (node.state, node.power_w, node.energy_j_total) == ("paused", 40.0, 23.0)
        assert node.last_heartbeat_at == net.clock()
        assert (other.state, other.power_w, other.energy_j_total) == ("idle", 20.0, 1.5)


def test_a_heartbeat_is_written_within_a_second_without_a_flush_by_hand(net: Net) -> None:
    node_id, token = net.node()
    _beat(net, token, "working", 2.0, 50.0)
    deadline = time.monotonic() + 5
    while True:
        with net.coordinator.reading() as s:
            node = s.get(NodeRow, node_id)
            assert node is not None
            if node.last_heartbeat_at is not None:
                break
        assert time.monotonic() < deadline, "the heartbeat was not written"
        time.sleep(0.05)
    assert (node.state, node.energy_j_total) == ("working", 2.0)


def test_a_heartbeat_needs_a_node_token_every_time(net: Net) -> None:
    _node_id, token = net.node()
    _beat(net, token, "idle", 0.0, 1.0)  # now in memory
    for bad in (token + "x", token[:-1], "hsr_" + token[4:], "hsn_"):
        r = net.client.post("/v1/nodes/me/heartbeat", json={"state": "idle"}, headers=net.auth(bad))
        assert r.status_code == 401, (bad, r.text)
        assert r.json()["error"].startswith("This call needs a valid node token")
