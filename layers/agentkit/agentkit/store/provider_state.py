"""Provider state shared by every Lambda: rate windows, holds and circuit breakers.

The ONLY code that touches DynamoDB for provider state. Items on the tasks table:

  PROVIDER#<provider> / HOLD     until, reason, set_at: every caller skips the provider
                                 until `until` (set after a 429; never shortened)
  PROVIDER#<provider> / BREAKER  state (closed | open | half_open), failures, window_start,
                                 open_until, probe_at: the outage circuit breaker
  PROVIDER#<provider> / PACE     interval, token_interval, tat, token_tat, until, version,
                                 tenants: the pacer in force after a 429 (see below)
  LIMIT#<scope>       / WINDOW   window (epoch minute), requests, tokens: what was granted
                                 in the current one-minute window of a limit scope
                                 (`openai`, or `openai:gpt-4o-mini` for a model's own limit)

One query on `PROVIDER#<provider>` reads a provider's hold, pacer and breaker together.

The pacer (GCRA, "virtual scheduling"): after a 429 the provider's calls are spaced
`interval` seconds apart (and `token_interval` seconds per estimated token) until `until`.
`tat` is the earliest moment the next call may start; a take moves it on by one interval.
Spacing calls at the provider's own rate keeps every sliding window of it within the limit,
where a burst at the hold's end would meet the limit again at once. Tenants share the pace
by weight: each active tenant (one that called within `ACTIVE_TENANT_S`) has its own `tat`
that moves on by `interval * total active weight / its weight`, so a tenant with a hundred
waiting tasks takes its share and leaves the rest of the slots to the others. A take is a
read and a write conditioned on the item's `version` (the whole decision is one atomic
compare-and-set; a lost race is re-read and decided again).

The limiter is a fixed one-minute window, one item per scope that rolls over in place (no
item per minute, so the table needs no TTL). A take is one conditional write per scope
(a transaction when a model has a provider limit and its own): either "same window and
requests + 1 <= rpm and tokens + reserved <= tpm" (ADD) or "the stored window is older"
(SET a fresh window). DynamoDB evaluates each condition atomically with its write, so no
more than the limit is ever granted in a window whatever the concurrency; a lost write is
re-read and re-decided. Every other write here is conditional too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from agentkit.store.codec import from_item, to_attr, to_item
from agentkit.store.codec import is_condition_failure as _is_condition_failure

WINDOW_S = 60
#: A tenant that took a paced slot within this many seconds shares the pace.
ACTIVE_TENANT_S = 60.0
#: Re-reads after a lost limiter write before giving up for this call (a lost write means
#: another caller wrote the same window: after a few the window is full or rolled over).
_MAX_TAKE_ROUNDS = 6


@dataclass(frozen=True)
class WindowLimit:
    """Requests and tokens per minute for one scope; None: that dimension is unlimited."""

    scope: str
    rpm: int | None = None
    tpm: int | None = None


@dataclass(frozen=True)
class Reservation:
    scope: str
    window: int
    tokens: int


@dataclass(frozen=True)
class RateGrant:
    """Budget taken: one request and `tokens` per scope, in the window each was taken in."""

    reservations: tuple[Reservation, ...] = ()


@dataclass(frozen=True)
class RateDenied:
    """Not enough budget now; `wait_seconds` until the window that holds it rolls over."""

    scope: str
    wait_seconds: float


@dataclass(frozen=True)
class PaceGrant:
    """A paced slot: the call may start at `at` (epoch seconds; now or a moment later)."""

    at: float


@dataclass(frozen=True)
class PaceDenied:
    """The next slot of this tenant is `wait_seconds` away: too far to wait in Lambda."""

    wait_seconds: float


@dataclass(frozen=True)
class ProviderSnapshot:
    hold_until: float | None = None
    hold_reason: str | None = None
    breaker: dict[str, Any] = field(default_factory=dict)
    pace: dict[str, Any] = field(default_factory=dict)

    def paced(self, now: float) -> bool:
        return float(self.pace.get("until", 0)) > now


def tenants_seen(pace: dict[str, Any], now: float) -> dict[str, dict[str, Any]]:
    """The tenants sharing a pacer now: those that called or waited within
    `ACTIVE_TENANT_S`."""
    return {name: entry for name, entry in dict(pace.get("tenants", {})).items()
            if float(entry.get("seen", 0)) > now - ACTIVE_TENANT_S}


def provider_pk(provider: str) -> str:
    return f"PROVIDER#{provider}"


def limit_pk(scope: str) -> str:
    return f"LIMIT#{scope}"


class ProviderStateStore:
    def __init__(self, client: Any, table_name: str) -> None:
        self.client = client
        self.table_name = table_name

    # --- reading a provider's hold and breaker at once

    def snapshot(self, provider: str) -> ProviderSnapshot:
        response = self.client.query(
            TableName=self.table_name,
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues=to_item({":pk": provider_pk(provider)}),
            ConsistentRead=True,
        )
        items = {item["sk"]: item for item in map(from_item, response.get("Items", []))}
        hold = items.get("HOLD", {})
        return ProviderSnapshot(
            hold_until=float(hold["until"]) if "until" in hold else None,
            hold_reason=hold.get("reason"),
            breaker=items.get("BREAKER", {}),
            pace=items.get("PACE", {}),
        )

    # --- holds

    def hold(self, provider: str, until: float, reason: str, *, now: float) -> bool:
        """Skip `provider` until `until`. False when a hold at least as long already exists
        (a longer hold is never shortened)."""
        return self._conditional_update(
            {"pk": provider_pk(provider), "sk": "HOLD"},
            "SET #until = :until, reason = :reason, set_at = :now",
            "attribute_not_exists(#until) OR #until < :until",
            {":until": until, ":reason": reason, ":now": now},
            names={"#until": "until"},
        )

    # --- the pacer

    def pace_start(
        self,
        provider: str,
        *,
        interval: float,
        token_interval: float | None,
        start_at: float,
        until: float,
        now: float,
    ) -> None:
        """Pace `provider` from `start_at` (the hold's end) until `until`. A pace already in
        force keeps its later slots, its longer intervals and its later end."""
        for _ in range(_MAX_TAKE_ROUNDS):
            item = self.pace(provider)
            fresh = float(item.get("until", 0)) <= now
            old_interval = 0.0 if fresh else float(item.get("interval", 0))
            old_tokens = 0.0 if fresh else float(item.get("token_interval", 0))
            values = {
                "interval": max(interval, old_interval),
                "token_interval": max(token_interval or 0.0, old_tokens),
                "tat": max(start_at, float(item.get("tat", 0))),
                "token_tat": max(start_at, float(item.get("token_tat", 0))),
                "until": max(until, float(item.get("until", 0))),
                "tenants": {} if fresh else item.get("tenants", {}),
            }
            if self._pace_write(provider, values, item.get("version")):
                return

    def pace_take(
        self,
        provider: str,
        *,
        tenant: str,
        weight: float,
        tokens: int,
        now: float,
        max_ahead_s: float,
        seen: dict[str, Any] | None = None,
    ) -> PaceGrant | PaceDenied:
        """The next paced slot for `tenant`: granted when it starts within `max_ahead_s`,
        else denied with how far it is. `seen`: the item as the caller last read it (saves
        a read; a stale one only costs a retry)."""
        item = seen if seen is not None else self.pace(provider)
        for _ in range(_MAX_TAKE_ROUNDS):
            if float(item.get("until", 0)) <= now:
                return PaceGrant(now)  # the pace ended meanwhile
            interval = float(item.get("interval", 0))
            token_interval = float(item.get("token_interval", 0))
            tenants = {name: entry for name, entry in tenants_seen(item, now).items()
                       if name != tenant}
            own = dict(item.get("tenants", {})).get(tenant, {})
            total_weight = weight + sum(float(entry.get("weight", 1)) for entry in tenants.values())
            # The next free slot of the provider; a tenant ahead of its share waits for a
            # later one (and leaves this one to the others: no slot is skipped).
            at = max(now, float(item.get("tat", 0)), float(item.get("token_tat", 0)))
            if float(own.get("tat", 0)) > at:
                at = float(own["tat"])
                max_ahead_s = -1.0  # never taken: the tenant asks again when its turn comes
            if at - now > max_ahead_s:
                if tenant not in tenants_seen(item, now):
                    # Known as waiting from now on, so the others' slots leave it its share.
                    self._pace_write(provider, {**item, "tenants": {
                        **tenants, tenant: {"tat": float(own.get("tat", 0)), "seen": now,
                                            "weight": weight}}}, item.get("version"))
                return PaceDenied(at - now)
            # The tenant's own schedule moves on from its own last mark (GCRA per tenant),
            # not from the slot it got: a slot taken late costs it no share.
            tenants[tenant] = {
                "tat": max(float(own.get("tat", 0)), now) + interval * total_weight / weight,
                "seen": now, "weight": weight}
            values = {
                "interval": interval,
                "token_interval": token_interval,
                "tat": at + interval,
                "token_tat": at + tokens * token_interval,
                "until": float(item["until"]),
                "tenants": tenants,
            }
            if self._pace_write(provider, values, item.get("version")):
                return PaceGrant(at)
            item = self.pace(provider)
        # Heavy contention: ask again after about one slot.
        return PaceDenied(max(float(item.get("interval", 1.0)), 1.0))

    def pace(self, provider: str) -> dict[str, Any]:
        """The stored pacer of a provider (empty: none)."""
        response = self.client.get_item(
            TableName=self.table_name,
            Key=to_item({"pk": provider_pk(provider), "sk": "PACE"}),
            ConsistentRead=True,
        )
        return from_item(response.get("Item", {}))

    def _pace_write(self, provider: str, values: dict[str, Any], version: Any) -> bool:
        """Replace the pacer if nobody wrote it since it was read (at `version`)."""
        item = {**values, "pk": provider_pk(provider), "sk": "PACE",
                "version": int(version or 0) + 1}
        condition = "attribute_not_exists(pk)" if version is None else "version = :version"
        try:
            self.client.put_item(
                TableName=self.table_name,
                Item=to_item(item),
                ConditionExpression=condition,
                **({} if version is None else
                   {"ExpressionAttributeValues": {":version": to_attr(int(version))}}),
            )
        except ClientError as error:
            if _is_condition_failure(error):
                return False
            raise
        return True

    # --- the rate limiter

    def take(
        self, limits: Sequence[WindowLimit], tokens: int, *, now: float
    ) -> RateGrant | RateDenied:
        """One request and `tokens` from every scope in `limits`, all or none."""
        limits = [limit for limit in limits if limit.rpm is not None or limit.tpm is not None]
        if not limits:
            return RateGrant()
        for _ in range(_MAX_TAKE_ROUNDS):
            seen = self._read_windows([limit.scope for limit in limits])
            updates: list[dict[str, Any]] = []
            reservations: list[Reservation] = []
            denied: list[RateDenied] = []
            for limit in limits:
                item = seen.get(limit.scope, {})
                stored = int(item["window"]) if "window" in item else None
                # A caller whose clock runs behind joins the newest window it sees.
                window = max(int(now // WINDOW_S), stored if stored is not None else -1)
                reserve = min(tokens, limit.tpm) if limit.tpm is not None else tokens
                same = stored == window
                used_requests = int(item.get("requests", 0)) if same else 0
                used_tokens = int(item.get("tokens", 0)) if same else 0
                if (limit.rpm is not None and used_requests + 1 > limit.rpm) or (
                    limit.tpm is not None and used_tokens + reserve > limit.tpm
                ):
                    wait = (window + 1) * WINDOW_S - now
                    denied.append(RateDenied(limit.scope, max(wait, 0.0)))
                    continue
                reservations.append(Reservation(limit.scope, window, reserve))
                updates.append(self._window_update(limit, window, reserve, same))
            if denied:
                return max(denied, key=lambda d: d.wait_seconds)
            try:
                if len(updates) == 1:
                    self.client.update_item(**updates[0])
                else:
                    self.client.transact_write_items(
                        TransactItems=[{"Update": update} for update in updates]
                    )
            except ClientError as error:
                if not _is_condition_failure(error):
                    raise
                continue  # someone else wrote the window first: re-read and decide again
            return RateGrant(tuple(reservations))
        # Heavy contention on a rolling window: ask again in a moment rather than spin.
        return RateDenied(limits[0].scope, 1.0)

    def settle(self, grant: RateGrant, used_tokens: int) -> None:
        """Correct each reservation to the tokens actually used (from the reply's usage).
        A window that has rolled over since is left alone."""
        for reservation in grant.reservations:
            delta = used_tokens - reservation.tokens
            if delta:
                self._adjust(reservation, requests=0, tokens=delta)

    def release(self, grant: RateGrant) -> None:
        """Give a grant back whole (no call was made with it)."""
        for reservation in grant.reservations:
            self._adjust(reservation, requests=-1, tokens=-reservation.tokens)

    def window(self, scope: str) -> dict[str, Any]:
        """The stored window of a scope (tests, operators)."""
        return self._read_windows([scope]).get(scope, {})

    # --- the circuit breaker's item (its policy lives in agentkit.llm.breaker)

    def breaker(self, provider: str) -> dict[str, Any]:
        response = self.client.get_item(
            TableName=self.table_name, Key=self._breaker_key(provider), ConsistentRead=True
        )
        return from_item(response.get("Item", {}))

    def breaker_claim_probe(
        self, provider: str, *, now: float, seen_state: str, seen_probe_at: float | None
    ) -> bool:
        """half_open with probe_at = now, only if nobody changed the item since it was read:
        exactly one caller wins the probe."""
        return self._breaker_update(
            provider,
            "SET #state = :half, probe_at = :now",
            "#state = :seen AND (attribute_not_exists(probe_at) OR probe_at = :seen_probe)",
            {":half": "half_open", ":now": now, ":seen": seen_state,
             ":seen_probe": seen_probe_at or 0},
        )

    def breaker_close(self, provider: str, *, now: float) -> bool:
        return self._breaker_update(
            provider,
            "SET #state = :closed, failures = :zero, window_start = :now",
            "attribute_exists(#state) AND #state <> :closed",
            {":closed": "closed", ":zero": 0, ":now": now},
        )

    def breaker_reopen(self, provider: str, *, open_until: float) -> bool:
        """A failed probe: half_open → open."""
        return self._breaker_update(
            provider,
            "SET #state = :open, open_until = :until, failures = :zero",
            "#state = :half",
            {":open": "open", ":until": open_until, ":zero": 0, ":half": "half_open"},
        )

    def breaker_count_failure(self, provider: str, *, now: float, window_s: float) -> int:
        """Count one failure in the current window (a fresh window when there is none or it
        is stale); the count within the window."""
        if self._breaker_update(
            provider,
            "SET failures = :one, window_start = :now, #state = if_not_exists(#state, :closed)",
            "attribute_not_exists(window_start) OR window_start < :stale",
            {":one": 1, ":now": now, ":stale": now - window_s, ":closed": "closed"},
        ):
            return 1
        response = self.client.update_item(  # an atomic increment of a live window
            TableName=self.table_name,
            Key=self._breaker_key(provider),
            UpdateExpression="ADD failures :one",
            ConditionExpression="attribute_exists(window_start)",
            ExpressionAttributeValues={":one": to_attr(1)},
            ReturnValues="UPDATED_NEW",
        )
        return int(response["Attributes"]["failures"]["N"])

    def breaker_trip(self, provider: str, *, open_until: float) -> bool:
        """closed → open."""
        return self._breaker_update(
            provider,
            "SET #state = :open, open_until = :until",
            "#state = :closed",
            {":open": "open", ":until": open_until, ":closed": "closed"},
        )

    # --- helpers

    def _window_update(
        self, limit: WindowLimit, window: int, reserve: int, same: bool
    ) -> dict[str, Any]:
        values: dict[str, Any] = {":w": window, ":one": 1, ":tokens": reserve}
        if same:
            conditions = ["#w = :w"]
            if limit.rpm is not None:
                conditions.append("requests <= :max_requests")
                values[":max_requests"] = limit.rpm - 1
            if limit.tpm is not None:
                conditions.append("tokens <= :max_tokens")
                values[":max_tokens"] = limit.tpm - reserve
            expression = "ADD requests :one, tokens :tokens"
            condition = " AND ".join(conditions)
        else:
            expression = "SET #w = :w, requests = :one, tokens = :tokens"
            condition = "attribute_not_exists(#w) OR #w < :w"
        return {
            "TableName": self.table_name,
            "Key": to_item({"pk": limit_pk(limit.scope), "sk": "WINDOW"}),
            "UpdateExpression": expression,
            "ConditionExpression": condition,
            "ExpressionAttributeNames": {"#w": "window"},
            "ExpressionAttributeValues": {k: to_attr(v) for k, v in values.items()},
        }

    def _read_windows(self, scopes: list[str]) -> dict[str, dict[str, Any]]:
        keys = [to_item({"pk": limit_pk(scope), "sk": "WINDOW"}) for scope in dict.fromkeys(scopes)]
        found: dict[str, dict[str, Any]] = {}
        request: dict[str, Any] = {self.table_name: {"Keys": keys, "ConsistentRead": True}}
        while request:
            response = self.client.batch_get_item(RequestItems=request)
            for item in response.get("Responses", {}).get(self.table_name, []):
                values = from_item(item)
                found[values["pk"].removeprefix("LIMIT#")] = values
            request = response.get("UnprocessedKeys") or {}
        return found

    def _adjust(self, reservation: Reservation, *, requests: int, tokens: int) -> None:
        self._conditional_update(
            {"pk": limit_pk(reservation.scope), "sk": "WINDOW"},
            "ADD requests :requests, tokens :tokens",
            "#w = :w",
            {":requests": requests, ":tokens": tokens, ":w": reservation.window},
            names={"#w": "window"},
        )

    def _breaker_key(self, provider: str) -> dict[str, Any]:
        return to_item({"pk": provider_pk(provider), "sk": "BREAKER"})

    def _breaker_update(
        self, provider: str, expression: str, condition: str, values: dict[str, Any]
    ) -> bool:
        return self._conditional_update(
            {"pk": provider_pk(provider), "sk": "BREAKER"},
            expression,
            condition,
            values,
            names={"#state": "state"},
        )

    def _conditional_update(
        self,
        key: dict[str, Any],
        expression: str,
        condition: str,
        values: dict[str, Any],
        *,
        names: dict[str, str],
    ) -> bool:
        try:
            self.client.update_item(
                TableName=self.table_name,
                Key=to_item(key),
                UpdateExpression=expression,
                ConditionExpression=condition,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues={k: to_attr(v) for k, v in values.items()},
            )
        except ClientError as error:
            if _is_condition_failure(error):
                return False
            raise
        return True
