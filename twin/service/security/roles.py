"""Who may call what: roles, API actions, the permission table and the MFA rule.

Deny by default: an unknown role or action is never allowed. State-changing actions that
reach beyond one customer's own work (cancel anyone's job, manage keys, change facilities)
also need a fresh second factor (TOTP, see `service.security.totp`).
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from types import MappingProxyType


class Role(StrEnum):
    """A principal's role, as stored with its API key."""

    CUSTOMER = "customer"
    OPERATOR = "operator"
    ADMIN = "admin"


class Action(StrEnum):
    """An API action; ``_own`` acts on the caller's own records, ``_any`` on anyone's."""

    SUBMIT_WORKLOAD = "submit_workload"
    READ_OWN_WORKLOAD = "read_own_workload"
    READ_ANY_WORKLOAD = "read_any_workload"
    CANCEL_OWN = "cancel_own"
    CANCEL_ANY = "cancel_any"
    LIST_OWN = "list_own"
    LIST_ANY = "list_any"
    READ_RESOURCES = "read_resources"
    READ_BILLING_OWN = "read_billing_own"
    READ_BILLING_ANY = "read_billing_any"
    MANAGE_KEYS = "manage_keys"
    READ_AUDIT = "read_audit"
    VERIFY_AUDIT = "verify_audit"
    MANAGE_FACILITIES = "manage_facilities"
    READ_FLEET = "read_fleet"


class AccessDecision(StrEnum):
    """Outcome of `authorize`: map ALLOWED to proceed, MFA_REQUIRED to 401, FORBIDDEN to 403."""

    ALLOWED = "allowed"
    MFA_REQUIRED = "mfa_required"
    FORBIDDEN = "forbidden"


_CUSTOMER_ACTIONS = frozenset(
    {
        Action.SUBMIT_WORKLOAD,
        Action.READ_OWN_WORKLOAD,
        Action.CANCEL_OWN,
        Action.LIST_OWN,
        Action.READ_RESOURCES,
        Action.READ_BILLING_OWN,
    }
)
_OPERATOR_ACTIONS = _CUSTOMER_ACTIONS | {
    Action.READ_ANY_WORKLOAD,
    Action.CANCEL_ANY,
    Action.LIST_ANY,
    Action.READ_AUDIT,
    Action.VERIFY_AUDIT,
    Action.MANAGE_FACILITIES,
    Action.READ_FLEET,
}
_ADMIN_ACTIONS = frozenset(Action)

PERMISSIONS: Mapping[Role, frozenset[Action]] = MappingProxyType(
    {
        Role.CUSTOMER: _CUSTOMER_ACTIONS,
        Role.OPERATOR: _OPERATOR_ACTIONS,
        Role.ADMIN: _ADMIN_ACTIONS,
    }
)
"""The permission table: the actions each role may call. Read-only."""

MFA_ACTIONS: frozenset[Action] = frozenset(
    {Action.CANCEL_ANY, Action.MANAGE_KEYS, Action.MANAGE_FACILITIES}
)
"""State-changing actions with platform-wide reach; they need a verified second factor."""


def _as_role(role: Role | str) -> Role | None:
    try:
        return Role(role)
    except ValueError:
        return None


def _as_action(action: Action | str) -> Action | None:
    try:
        return Action(action)
    except ValueError:
        return None


def allowed(role: Role | str, action: Action | str) -> bool:
    """True if `role` may call `action` (before any MFA check); unknown names are denied."""
    known_role, known_action = _as_role(role), _as_action(action)
    if known_role is None or known_action is None:
        return False
    return known_action in PERMISSIONS[known_role]


def needs_mfa(role: Role | str, action: Action | str) -> bool:
    """True if `role` may call `action` but only with a verified second factor.

    False for actions the role may not call at all: check `allowed` (or use `authorize`).
    """
    return allowed(role, action) and _as_action(action) in MFA_ACTIONS


def authorize(role: Role | str, action: Action | str, *, mfa_verified: bool) -> AccessDecision:
    """Combine `allowed` and `needs_mfa` into one decision for a request."""
    if not allowed(role, action):
        return AccessDecision.FORBIDDEN
    if needs_mfa(role, action) and not mfa_verified:
        return AccessDecision.MFA_REQUIRED
    return AccessDecision.ALLOWED
