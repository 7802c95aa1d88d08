"""DCC file transfer, what the peer says: offers, resume requests, answers, rejections.

These functions are part of :class:`~relaychat.client.dcc.DccManager` (kept apart only to keep
each module small): they read and change its transfers, and never do I/O themselves (sending a
CTCP back is handed to the manager). They see the manager through :class:`DccOwner` (exactly
what they use), and :class:`Job` (what the manager holds per transfer) lives here, so this
module never imports :mod:`relaychat.client.dcc` (which imports it). The rules they enforce
are :mod:`relaychat.client.dcc`'s rule 1: offers are only reported, and answers count only from
the right nick with the right port or token.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from dataclasses import dataclass, field
from typing import Any, Protocol

from relaychat.client.connection import Client
from relaychat.client.dccstate import (
    DccConfig,
    DccOffered,
    DccRefused,
    Direction,
    State,
    Transfer,
    check_address,
    check_offer,
    safe_name,
)
from relaychat.client.delivery import EventHub
from relaychat.client.events import Ctcp
from relaychat.protocol.casemap import irc_lower
from relaychat.protocol.ctcp import CtcpError, DccReject, DccResume, DccSend, parse_dcc

__all__ = ["DccOwner", "Job", "on_dcc"]

log = logging.getLogger("relaychat.client.dcc")


@dataclass(eq=False)
class Job:
    """What the manager holds for one transfer besides its public :class:`Transfer`."""

    transfer: Transfer
    offer: DccSend | None = None  # the offer received
    answer: asyncio.Future[DccSend | DccResume] | None = None  # what we wait for from the peer
    task: asyncio.Task[None] | None = None
    ended: asyncio.Future[Transfer] = field(default_factory=lambda: _future())
    listener: socket.socket | None = None
    file: Any = None
    fd: int | None = None
    expiry: asyncio.TimerHandle | None = None
    reserved: str | None = None
    want_passive: bool | None = None
    last_progress: float = 0.0


def _future() -> asyncio.Future[Transfer]:
    return asyncio.get_running_loop().create_future()


class DccOwner(Protocol):
    """What these functions use of :class:`~relaychat.client.dcc.DccManager`."""

    client: Client
    config: DccConfig
    _hub: EventHub
    _jobs: dict[int, Job]

    def offers(self, nick: str | None = None) -> list[Transfer]:
        """Incoming offers waiting to be accepted (from ``nick`` only, when given)."""
        ...

    def _allowed_nick(self, nick: str) -> bool: ...

    def _new(
        self, direction: Direction, nick: str, name: str, size: int, *, state: State = ...
    ) -> Job: ...

    def _spawn_ctcp(self, job: Job, text: str, what: str) -> None: ...

    def _expire(self, job: Job) -> None: ...

    def _end(self, job: Job, state: State, reason: str = "") -> None: ...


def on_dcc(m: DccOwner, ev: Ctcp) -> None:
    """Act on a ``DCC`` CTCP from a peer (every rule of :mod:`.dcc` rule 1 is here)."""
    nick = ev.sender
    try:
        msg = parse_dcc(ev.args)
    except CtcpError as exc:
        if m._allowed_nick(nick) and not ev.reply:
            m._hub.publish(DccRefused(nick, ev.args[:200], exc.detail))
        return
    if isinstance(msg, DccReject):
        _on_reject(m, nick, msg)
    elif ev.reply:
        return
    elif isinstance(msg, DccResume):
        _on_resume(m, nick, msg)
    elif msg.token is not None and msg.port != 0:  # the answer to a passive offer of ours
        job = _find(m, nick, Direction.SEND, token=msg.token, passive=True)
        if job is not None and job.answer is not None and not job.answer.done():
            problem = check_address(msg.host, msg.port, m.config)
            if problem is not None:
                m._end(job, State.FAILED, f"{nick} answered with an unusable address: {problem}")
            else:
                job.answer.set_result(msg)
    else:
        _on_offer(m, ev, msg)


def _on_offer(m: DccOwner, ev: Ctcp, offer: DccSend) -> None:
    """DCC SEND: a new offer; reported as :class:`DccOffered` if it passes every check."""
    nick = ev.sender
    if not m._allowed_nick(nick):
        log.debug("ignored a DCC offer from %s (not in allow_from)", nick)
        return
    if m.client.is_channel(ev.target.lstrip("@+")):
        why = "DCC offers to a channel are ignored"
        m._hub.publish(DccRefused(nick, ev.args[:200], why))
        return
    try:
        name = safe_name(offer.name)
    except ValueError as exc:
        m._hub.publish(DccRefused(nick, ev.args[:200], str(exc)))
        return
    problem = check_offer(offer, m.config)
    if problem is not None:
        m._hub.publish(DccRefused(nick, ev.args[:200], problem))
        return
    for old in m.offers(nick):  # the same offer again replaces the older one
        if old.offered_name == offer.name:
            m._end(m._jobs[old.id], State.CANCELLED, "offered again")
    pending = m.offers()
    for old in pending[: max(0, len(pending) - m.config.max_offers + 1)]:
        m._end(m._jobs[old.id], State.FAILED, "too many offers waiting")
    job = m._new(Direction.RECEIVE, nick, name, offer.size, state=State.OFFERED)
    t = job.transfer
    t.offered_name, t.host, t.port, t.token = offer.name, offer.host, offer.port, offer.token
    t.passive, t.turbo, job.offer = offer.passive, offer.turbo, offer
    loop = asyncio.get_running_loop()
    job.expiry = loop.call_later(m.config.offer_timeout, m._expire, job)
    m._hub.publish(DccOffered(t))


def _on_resume(m: DccOwner, nick: str, msg: DccResume) -> None:
    """DCC RESUME (to an offer of ours) or DCC ACCEPT (to a resume request of ours)."""
    if msg.accept:  # our RESUME was accepted
        job = _find(m, nick, Direction.RECEIVE, port=msg.port, token=msg.token)
        if job is not None and job.answer is not None and not job.answer.done():
            job.answer.set_result(msg)
        return
    job = _find(m, nick, Direction.SEND, port=msg.port, token=msg.token)
    if job is None:
        return
    t = job.transfer
    if msg.position >= t.size:
        m._end(job, State.FAILED, f"{nick} asked to resume at {msg.position}, past the end")
        return
    t.offset = t.done = msg.position
    accept = DccResume(
        name=msg.name, port=msg.port, position=msg.position, token=msg.token, accept=True
    )
    m._spawn_ctcp(job, accept.to_text(), "the resume acceptance")


def _on_reject(m: DccOwner, nick: str, msg: DccReject) -> None:
    """DCC REJECT: the peer declined our offer, or withdrew theirs."""
    for job in list(m._jobs.values()):
        t = job.transfer
        names = {t.name, t.offered_name}
        if (
            irc_lower(t.nick) == irc_lower(nick)
            and msg.name in names
            and t.state in (State.OFFERED, State.WAITING)
        ):
            m._end(job, State.FAILED, f"{nick} declined")


def _find(
    m: DccOwner,
    nick: str,
    direction: Direction,
    *,
    port: int | None = None,
    token: str | None = None,
    passive: bool | None = None,
) -> Job | None:
    """The transfer with ``nick`` waiting for an answer: a passive one (or any, when the
    answer says port 0) matches on ``token``, a classic one on ``port``."""
    for job in m._jobs.values():
        t = job.transfer
        if (
            t.direction is direction
            and t.state is State.WAITING
            and irc_lower(t.nick) == irc_lower(nick)
            and (passive is None or t.passive == passive)
            and (
                token is not None and token == t.token if t.passive or port == 0 else port == t.port
            )
        ):
            return job
    log.debug("ignored a DCC answer from %s that matches no transfer", nick)
    return None
