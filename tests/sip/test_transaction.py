"""Transaction state machines: every timer, retransmission schedule and state (no sleeping)."""

from __future__ import annotations

import pytest

from switch.sip.timers import TimerSettings
from switch.sip.transaction import (
    ClientInviteTransaction,
    ClientNonInviteTransaction,
    ServerInviteTransaction,
    ServerNonInviteTransaction,
    Transaction,
    TransactionStateError,
    TxOutcome,
    TxState,
)

T = TimerSettings()  # T1 0.5, T2 4, T4 5


def drain(tx: Transaction) -> list[bytes]:
    out = list(tx.outbox)
    tx.outbox.clear()
    return out


def run_until(tx: Transaction, end: float) -> list[tuple[float, bytes]]:
    """Fire timers at their exact deadlines up to ``end``; record what was sent when."""
    sent: list[tuple[float, bytes]] = []
    while True:
        deadline = tx.next_timer()
        if deadline is None or deadline > end:
            return sent
        tx.handle_timer(deadline)
        sent.extend((deadline, data) for data in drain(tx))


def test_timer_settings_derived_values() -> None:
    s = TimerSettings(t1=0.5, t2=4.0, t4=5.0)
    assert (s.timer_a, s.timer_b, s.timer_d, s.timer_e, s.timer_f) == (0.5, 32.0, 32.0, 0.5, 32.0)
    assert (s.timer_g, s.timer_h, s.timer_i, s.timer_j, s.timer_k) == (0.5, 32.0, 5.0, 32.0, 5.0)
    assert (s.timer_l, s.timer_m, s.timer_c) == (32.0, 32.0, 180.0)
    short = TimerSettings(t1=0.01, t2=0.08, t4=0.1)
    assert short.timer_b == pytest.approx(0.64)
    with pytest.raises(ValueError):
        TimerSettings(t1=5.0, t2=4.0)


def test_client_invite_timer_a_doubles_without_cap_until_b() -> None:
    tx = ClientInviteTransaction("c1", T, False, b"INVITE", now=100.0)
    assert drain(tx) == [b"INVITE"]
    sent = run_until(tx, 200.0)
    times = [when for when, data in sent if data == b"INVITE"]
    # A: 0.5, 1, 2, 4, 8, 16 after each send -> 100.5, 101.5, 103.5, 107.5, 115.5, 131.5; B at 132
    assert times == [100.5, 101.5, 103.5, 107.5, 115.5, 131.5]
    assert tx.terminated


def test_client_invite_timer_b_reports_timeout() -> None:
    tx = ClientInviteTransaction("c1", T, True, b"INVITE", now=0.0)
    drain(tx)
    assert tx.timer_deadline("A") is None  # reliable: no retransmissions
    assert tx.next_timer() == 32.0
    assert tx.handle_timer(31.999) is TxOutcome.NONE
    assert tx.handle_timer(32.0) is TxOutcome.TIMEOUT
    assert tx.state is TxState.TERMINATED
    assert drain(tx) == []


def test_client_invite_provisional_stops_retransmission() -> None:
    tx = ClientInviteTransaction("c1", T, False, b"INVITE", now=0.0)
    drain(tx)
    assert tx.receive_response(180, 0.2, lambda: b"ACK") is True
    assert tx.state is TxState.PROCEEDING
    assert tx.next_timer() is None
    assert run_until(tx, 100.0) == []


def test_client_invite_non_2xx_sends_ack_and_absorbs_retransmits_until_d() -> None:
    tx = ClientInviteTransaction("c1", T, False, b"INVITE", now=0.0)
    drain(tx)
    assert tx.receive_response(486, 1.0, lambda: b"ACK-486") is True
    assert tx.state is TxState.COMPLETED
    assert drain(tx) == [b"ACK-486"]
    assert tx.receive_response(486, 2.0, lambda: b"unused") is False
    assert drain(tx) == [b"ACK-486"]  # ACK resent for the retransmitted final
    assert tx.timer_deadline("D") == 33.0
    assert tx.handle_timer(33.0) is TxOutcome.NONE
    assert tx.terminated


def test_client_invite_non_2xx_reliable_terminates_at_once() -> None:
    tx = ClientInviteTransaction("c1", T, True, b"INVITE", now=0.0)
    drain(tx)
    assert tx.receive_response(603, 1.0, lambda: b"ACK") is True
    assert drain(tx) == [b"ACK"]
    assert tx.terminated


def test_client_invite_2xx_accepted_until_m_passes_retransmitted_2xx() -> None:
    tx = ClientInviteTransaction("c1", T, False, b"INVITE", now=0.0)
    drain(tx)
    assert tx.receive_response(200, 1.0, lambda: b"never") is True
    assert tx.state is TxState.ACCEPTED
    assert drain(tx) == []  # the TU acknowledges a 2xx, not the transaction
    assert tx.receive_response(200, 2.0, lambda: b"never") is True
    assert tx.receive_response(180, 2.0, lambda: b"never") is False
    assert tx.timer_deadline("M") == 33.0
    tx.handle_timer(33.0)
    assert tx.terminated


def test_client_non_invite_timer_e_doubles_up_to_t2_then_f() -> None:
    tx = ClientNonInviteTransaction("c2", T, False, b"BYE", now=0.0)
    assert drain(tx) == [b"BYE"]
    times: list[float] = []
    outcome = TxOutcome.NONE
    while (deadline := tx.next_timer()) is not None:
        outcome = tx.handle_timer(deadline)
        times.extend(deadline for _ in drain(tx))
    intervals = [b - a for a, b in zip([0.0, *times], times, strict=False)]
    assert intervals[:5] == [0.5, 1.0, 2.0, 4.0, 4.0]
    assert max(intervals) == 4.0
    assert times[-1] < 32.0
    assert outcome is TxOutcome.TIMEOUT
    assert tx.terminated


def test_client_non_invite_proceeding_retransmits_every_t2() -> None:
    tx = ClientNonInviteTransaction("c2", T, False, b"BYE", now=0.0)
    drain(tx)
    tx.handle_timer(0.5)
    assert drain(tx) == [b"BYE"]
    assert (
        tx.receive_response(
            100,
            0.7,
        )
        is True
    )
    sent = run_until(tx, 12.0)
    assert [when for when, _ in sent] == [1.5, 5.5, 9.5]  # first E was already 1 s, then T2


def test_client_non_invite_final_absorbs_retransmits_until_k() -> None:
    tx = ClientNonInviteTransaction("c2", T, False, b"OPTIONS", now=0.0)
    drain(tx)
    assert tx.receive_response(200, 0.1) is True
    assert tx.receive_response(200, 0.2) is False
    assert tx.next_timer() == pytest.approx(5.1)
    tx.handle_timer(5.1)
    assert tx.terminated
    reliable = ClientNonInviteTransaction("c3", T, True, b"OPTIONS", now=0.0)
    assert reliable.timer_deadline("E") is None
    assert reliable.receive_response(404, 0.1) is True
    assert reliable.terminated


def test_server_invite_non_2xx_retransmits_g_up_to_t2_until_h() -> None:
    tx = ServerInviteTransaction("s1", T, False, now=0.0)
    tx.send_response(100, b"100", 0.0)
    tx.receive_request(0.3)
    assert drain(tx) == [b"100", b"100"]  # INVITE retransmission gets the provisional again
    tx.send_response(486, b"486", 1.0)
    assert drain(tx) == [b"486"]
    times: list[float] = []
    outcome = TxOutcome.NONE
    while (deadline := tx.next_timer()) is not None:
        outcome = tx.handle_timer(deadline)
        times.extend(deadline for _ in drain(tx))
    assert times[:6] == [1.5, 2.5, 4.5, 8.5, 12.5, 16.5]
    assert outcome is TxOutcome.TIMEOUT  # H at 33 with no ACK
    assert tx.terminated


def test_server_invite_ack_confirms_and_timer_i_terminates() -> None:
    tx = ServerInviteTransaction("s1", T, False, now=0.0)
    tx.send_response(487, b"487", 0.0)
    drain(tx)
    tx.receive_request(0.1)
    assert drain(tx) == [b"487"]
    assert tx.receive_ack(0.2) is False
    assert tx.state is TxState.CONFIRMED
    assert tx.timer_deadline("G") is None and tx.timer_deadline("H") is None
    assert tx.receive_ack(0.3) is False  # ACK retransmission absorbed
    tx.receive_request(0.4)
    assert drain(tx) == []
    assert tx.next_timer() == pytest.approx(5.2)
    tx.handle_timer(5.2)
    assert tx.terminated


def test_server_invite_reliable_has_no_g_and_no_i() -> None:
    tx = ServerInviteTransaction("s1", T, True, now=0.0)
    tx.send_response(486, b"486", 0.0)
    assert tx.timer_deadline("G") is None
    assert tx.timer_deadline("H") == 32.0
    tx.receive_ack(1.0)
    assert tx.terminated


def test_server_invite_2xx_retransmitted_until_ack_then_l() -> None:
    tx = ServerInviteTransaction("s1", T, False, now=0.0)
    tx.send_response(200, b"200", 0.0)
    assert tx.state is TxState.ACCEPTED
    assert drain(tx) == [b"200"]
    sent = run_until(tx, 5.0)
    assert [when for when, _ in sent] == [0.5, 1.5, 3.5]
    tx.receive_request(5.0)  # INVITE retransmission in ACCEPTED: absorbed
    assert drain(tx) == []
    tx.send_response(200, b"200", 5.1)  # RFC 6026: TU retransmission passes
    assert drain(tx) == [b"200"]
    assert tx.receive_ack(6.0) is True
    assert tx.receive_ack(6.1) is False  # a second ACK is absorbed
    assert run_until(tx, 31.9) == []
    assert tx.handle_timer(32.0) is TxOutcome.NONE
    assert tx.terminated


def test_server_invite_2xx_without_ack_ends_in_ack_timeout() -> None:
    tx = ServerInviteTransaction("s1", T, False, now=0.0)
    tx.send_response(200, b"200", 0.0)
    drain(tx)
    sent = run_until(tx, 31.9)
    assert [when for when, _ in sent] == [0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
    assert tx.handle_timer(32.0) is TxOutcome.ACK_TIMEOUT
    assert tx.terminated


def test_server_invite_refuses_second_final() -> None:
    tx = ServerInviteTransaction("s1", T, False, now=0.0)
    tx.send_response(486, b"486", 0.0)
    with pytest.raises(TransactionStateError):
        tx.send_response(200, b"200", 0.1)


def test_server_non_invite_absorbs_then_replays_until_j() -> None:
    tx = ServerNonInviteTransaction("s2", T, False, now=0.0)
    tx.receive_request(0.1)
    assert drain(tx) == []  # TRYING: absorbed
    tx.send_response(100, b"100", 0.2)
    tx.receive_request(0.3)
    assert drain(tx) == [b"100", b"100"]
    tx.send_response(200, b"200", 0.4)
    tx.receive_request(0.5)
    assert drain(tx) == [b"200", b"200"]
    with pytest.raises(TransactionStateError):
        tx.send_response(500, b"500", 0.6)
    assert tx.next_timer() == pytest.approx(32.4)
    tx.handle_timer(32.4)
    assert tx.terminated


def test_server_non_invite_reliable_terminates_on_final() -> None:
    tx = ServerNonInviteTransaction("s2", T, True, now=0.0)
    tx.send_response(200, b"200", 0.0)
    assert tx.terminated
    assert drain(tx) == [b"200"]
