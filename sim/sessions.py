"""Conversations and agent loops, closed loop: a turn is sent when the previous one has ended.

The request stream holds every turn (traffic/stream.py); the first turn of each session
arrives at its stream time like any request, every later one `think_s` after the previous
turn of its session was answered; a turn that fans out into several requests (an agent's
parallel calls) has ended when all have. So a slow fleet delays the conversations it serves,
as it would with real users and agents. A turn that ends without an answer (refused, too
long, timed out, failed) ends its conversation: the turns after it are never sent (outcome
`conversation_ended`, at that time), since their history would hold an answer that does not
exist (an agent's loop stops at a failed call; a user whose question failed does not go on
as if answered).

Ends are reported by whatever served the request (`Records.on_end`): a cloud endpoint knows
them ahead of time, a fast replica as soon as it executes the step (it may run ahead of the
clock, never behind: `wake` advances every busy replica at the next moment its batch may
change, so no end is found late), a reference replica as its step completes. An end is
confirmed at its own time: a hybrid may take a refused request back and send it elsewhere.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import simpy

from llmplan.sim.records import CONVERSATION_ENDED, OK, PENDING, Records
from llmplan.sim.replica import Replica


class SessionLoop:
    """Sends each session's later turns when the previous turn has ended."""

    def __init__(self, env: simpy.Environment, *, session: np.ndarray, turn: np.ndarray,
                 think_s: np.ndarray, arrivals: list[float], records: Records,
                 handler: Callable[[int, float], object]) -> None:
        self.env, self.arrivals, self.rec, self.handler = env, arrivals, records, handler
        self.think_s = think_s.tolist()
        n = len(session)
        self.sent = [True] * n
        # turns: the requests of one (session, turn), in order; each knows the next turn
        self.turn_of = [-1] * n
        self.members: list[list[int]] = []
        self.next_of: list[int] = []
        self.left: list[int] = []           # requests of the turn not ended yet
        self.last_end: list[float] = []
        rows = np.flatnonzero(session >= 0)
        order = rows[np.lexsort((rows, turn[rows], session[rows]))].tolist()
        key, follows = (-1, -1), False
        for rid in order:
            this = (int(session[rid]), int(turn[rid]))
            if this != key:
                follows = key[0] == this[0]      # the same session's next turn
                if follows:
                    self.next_of[-1] = len(self.members)
                self.members.append([])
                self.next_of.append(-1)
                key = this
            if follows:
                self.sent[rid] = False           # sent when the turn before has ended
            self.turn_of[rid] = len(self.members) - 1
            self.members[-1].append(rid)
        self.left = [len(m) for m in self.members]
        self.last_end = [0.0] * len(self.members)
        self.unanswered = [False] * len(self.members)   # a request of the turn failed
        self.ended = [False] * n
        #: requests sent at their stream time (first turns, and requests of no session)
        self.first = [rid for rid in range(n) if self.sent[rid]]
        self.late = 0            # ends found after the next turn was due (should stay 0)
        self.replicas: Sequence[Replica] = []
        self._wake_at: dict[int, float] = {}
        records.on_end = self._ended

    # ---------------------------------------------------------------- ends

    def _ended(self, rid: int) -> None:
        group = self.turn_of[rid]
        if group < 0 or self.next_of[group] < 0:
            return
        end = self.rec.finish_s[rid]
        self._later(end, lambda: self._confirm(rid))

    def _later(self, t: float, action: Callable[[], None]) -> None:
        now = self.env.now
        self.env.timeout(max(0.0, t - now)).callbacks.append(lambda _: action())

    def _confirm(self, rid: int) -> None:
        end = self.rec.finish_s[rid]
        if self.ended[rid] or end < 0 or self.rec.outcome[rid] == PENDING:
            return   # taken back (a hybrid resends it) or already counted
        if end > self.env.now + 1e-9:
            self._later(end, lambda: self._confirm(rid))   # it moved later
            return
        self.ended[rid] = True
        group = self.turn_of[rid]
        self.left[group] -= 1
        self.last_end[group] = max(self.last_end[group], end)
        self.unanswered[group] |= self.rec.outcome[rid] != OK
        if self.left[group]:
            return   # other requests of the turn are still running
        if self.unanswered[group]:
            self._end_conversation(self.next_of[group], self.last_end[group])
            return
        following = self.members[self.next_of[group]]
        due = self.last_end[group] + self.think_s[following[0]]
        if due < self.env.now - 1e-9:
            self.late += 1
            due = self.env.now
        for nxt in following:
            self.sent[nxt] = True
            self.arrivals[nxt] = due
        self._later(due, lambda: self._send_turn(following, due))

    def _end_conversation(self, group: int, t: float) -> None:
        """Turn `group` and every one after it are never sent: the conversation ended at
        t, when the turn before it ended unanswered."""
        rec = self.rec
        while group >= 0:
            for rid in self.members[group]:
                rec.outcome[rid], rec.finish_s[rid] = CONVERSATION_ENDED, t
                self.arrivals[rid] = t
            group = self.next_of[group]

    def _send_turn(self, rids: list[int], t: float) -> None:
        for rid in rids:
            self.handler(rid, t)
        self.wake_all()

    def send(self, rid: int, t: float) -> None:
        self.handler(rid, t)
        self.wake_all()

    # ---------------------------------------------------------------- fast replicas

    def watch(self, replicas: Sequence[Replica]) -> None:
        """Fast replicas run lazily: keep each busy one advanced to its next batch change."""
        self.replicas = replicas

    def wake_all(self) -> None:
        for replica in self.replicas:
            self._ensure_wake(replica)

    def _ensure_wake(self, replica: Replica) -> None:
        if not replica.n_in:
            return
        now = self.env.now
        quiet = replica.quiet_until_s
        due = quiet if quiet > now and not math.isinf(quiet) else max(replica.now_s, now)
        pending = self._wake_at.get(replica.index, math.inf)
        if due < pending - 1e-12:
            self._wake_at[replica.index] = due
            self._later(due, lambda: self._wake(replica, due))

    def _wake(self, replica: Replica, due: float) -> None:
        if self._wake_at.get(replica.index) != due:
            return   # superseded by an earlier wake
        del self._wake_at[replica.index]
        # every step starting by `due`; a run of decode steps ending later is left parked
        # with its end as quiet_until_s, the next wake
        replica.advance(math.nextafter(due, math.inf), cut=False)
        self._ensure_wake(replica)
