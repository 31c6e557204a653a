"""The role matrix: who may call each API operation and use each admin model. One rule, one place.

`API` has a row per operation of `/api/schema/`, keyed by (HTTP method, URL name); `ADMIN_MODELS`
a row per model registered in the admin, with the roles that may view, add, change and delete
it there. The API's one permission class (`RolePermission`, the REST framework default) and the
admin classes (`RoleMatrixAdmin`, `RoleMatrixInline`) read these rows, and `role_groups_ensure`
(config/roles.py) derives the groups' Django permissions from `ADMIN_MODELS` for the admin pages
we do not write ourselves (users, groups, lockouts). tests/foundation/test_role_matrix.py walks
every schema operation and every admin list and add page as each role against these rows, and
fails when an operation or a model has no row.

The policy (docs/architecture.md, "Roles"): annotators reach the labeling loop and their own
identity, nothing else (they are not staff, so the admin sends them to its login page). Leads
change generation, annotation and dataset models and read training and reward models. ML
engineers change training runs and reward models (start, cancel, register, promote, archive,
evaluate, active learning) and read generation, labeling summaries and datasets, but never
create, freeze, export or delete datasets or their versions: a run's own export (the
training service asks the export service) is the run's need, not an API call of theirs.
An admin is a superuser: a column like the others, so "nobody" means nobody.

A missing row refuses everyone (and is logged), so a new endpoint is closed until it is given
one. Rows open to every role are open to every signed-in account without a group lookup (the
labeling loop's hot path); there the queue's access list decides (403 for others).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from rest_framework.permissions import BasePermission

from config.roles import Role

if TYPE_CHECKING:  # rest_framework.views imports this module (the default permission)
    from rest_framework.request import Request
    from rest_framework.views import APIView

log = logging.getLogger(__name__)

ANONYMOUS = "anonymous"
ANNOTATOR, LEAD, ML, ADMIN = Role.ANNOTATOR, Role.LEAD, Role.ML, Role.ADMIN

EVERYONE = frozenset({ANONYMOUS, ANNOTATOR, LEAD, ML, ADMIN})
SIGNED_IN = frozenset({ANNOTATOR, LEAD, ML, ADMIN})
STAFF = frozenset({LEAD, ML, ADMIN})
LEADS = frozenset({LEAD, ADMIN})
MLS = frozenset({ML, ADMIN})
ADMINS = frozenset({ADMIN})
NOBODY: frozenset[str] = frozenset()

# Who may obtain an API token with a password (POST /api/auth/token/). Annotators label in the
# browser with a session; `manage.py create_token` gives any account one (load tests).
TOKEN_ROLES = STAFF

# (method, URL name) -> roles. HEAD is GET; OPTIONS is allowed to whoever may use any method.
API: dict[tuple[str, str], frozenset[str]] = {
    # -- the project: health, identity, tokens ---------------------------------------------
    ("GET", "api:health"): EVERYONE,
    ("GET", "api:health-live"): EVERYONE,
    ("GET", "api:me"): SIGNED_IN,
    ("POST", "api:auth-token"): EVERYONE,  # a login; the view issues tokens to TOKEN_ROLES
    ("POST", "api:auth-token-revoke"): SIGNED_IN,
    ("POST", "api:auth-token-revoke-all"): SIGNED_IN,
    # -- generation: leads change, ML engineers read ---------------------------------------
    ("GET", "api:generation:prompt-set-list"): STAFF,
    ("POST", "api:generation:prompt-set-list"): LEADS,
    ("GET", "api:generation:prompt-set-detail"): STAFF,
    ("POST", "api:generation:prompt-set-import"): LEADS,
    ("POST", "api:generation:prompt-set-preview"): LEADS,
    ("GET", "api:generation:prompt-list"): STAFF,
    ("GET", "api:generation:config-list"): STAFF,
    ("POST", "api:generation:config-list"): LEADS,
    ("GET", "api:generation:config"): STAFF,
    ("PATCH", "api:generation:config"): LEADS,
    ("POST", "api:generation:config-check"): LEADS,
    ("GET", "api:generation:campaign-list"): STAFF,
    ("POST", "api:generation:campaign-list"): LEADS,
    ("GET", "api:generation:campaign"): STAFF,
    ("POST", "api:generation:campaign-launch"): LEADS,
    ("POST", "api:generation:campaign-cancel"): LEADS,
    ("POST", "api:generation:campaign-retry-failed"): LEADS,
    ("POST", "api:generation:campaign-requeue"): LEADS,
    ("GET", "api:generation:campaign-candidates"): STAFF,
    ("GET", "api:generation:candidate-image"): STAFF,
    # -- the labeling loop: any account on the queue's access list -------------------------
    ("GET", "api:annotation:queue-list"): SIGNED_IN,
    ("GET", "api:annotation:queue"): SIGNED_IN,
    ("POST", "api:annotation:next"): SIGNED_IN,
    ("POST", "api:annotation:submit"): SIGNED_IN,
    ("POST", "api:annotation:heartbeat"): SIGNED_IN,
    ("POST", "api:annotation:undo"): SIGNED_IN,
    ("GET", "api:annotation:progress"): SIGNED_IN,
    ("GET", "api:annotation:example-image"): SIGNED_IN,
    ("GET", "api:annotation:image"): SIGNED_IN,
    # -- managing queues: leads ------------------------------------------------------------
    ("GET", "api:annotation:manage-queues"): LEADS,
    ("POST", "api:annotation:manage-queues"): LEADS,
    ("POST", "api:annotation:manage-queue-pause"): LEADS,
    ("POST", "api:annotation:manage-queue-resume"): LEADS,
    ("POST", "api:annotation:manage-pair-build-start"): LEADS,
    ("GET", "api:annotation:manage-pair-build"): LEADS,
    # -- quality control: leads only (annotators must never learn which pairs are gold) ----
    ("GET", "api:annotation:manage-queue-quality"): LEADS,
    ("GET", "api:annotation:manage-queue-quality-pairs"): LEADS,
    ("GET", "api:annotation:manage-annotators-quality"): LEADS,
    ("GET", "api:annotation:manage-pair"): LEADS,
    ("POST", "api:annotation:manage-annotator-resume"): LEADS,
    ("POST", "api:annotation:manage-annotator-pause"): LEADS,
    ("POST", "api:annotation:manage-pair-gold"): LEADS,
    ("DELETE", "api:annotation:manage-pair-gold"): LEADS,
    ("POST", "api:annotation:manage-gold-confirm"): LEADS,
    ("POST", "api:annotation:manage-pair-review"): LEADS,
    # -- datasets: leads change, ML engineers read and download ----------------------------
    ("GET", "api:training:datasets"): STAFF,
    ("POST", "api:training:datasets"): LEADS,
    ("GET", "api:training:dataset-versions"): STAFF,
    ("POST", "api:training:dataset-versions"): LEADS,
    ("GET", "api:training:dataset-version"): STAFF,
    ("POST", "api:training:dataset-freeze"): LEADS,
    ("POST", "api:training:dataset-exports"): LEADS,
    ("GET", "api:training:dataset-diff"): STAFF,
    ("GET", "api:training:dataset-artifact"): STAFF,
    ("GET", "api:training:dataset-export"): STAFF,
    # -- training runs: ML engineers change, leads read ------------------------------------
    ("GET", "api:training:training-launchers"): STAFF,
    ("GET", "api:training:training-runs"): STAFF,
    ("POST", "api:training:training-runs"): MLS,
    ("GET", "api:training:training-run"): STAFF,
    ("POST", "api:training:training-run-cancel"): MLS,
    ("GET", "api:training:training-run-metrics"): STAFF,
    ("GET", "api:training:training-run-artifact"): STAFF,
    # -- reward models: ML engineers change, leads read; scoring for RL trainers -----------
    ("GET", "api:training:reward-models"): STAFF,
    ("POST", "api:training:reward-models"): MLS,
    ("GET", "api:training:reward-model"): STAFF,
    ("GET", "api:training:reward-model-current"): STAFF,
    ("POST", "api:training:reward-model-promote"): MLS,
    ("POST", "api:training:reward-model-archive"): MLS,
    # Comparing reads two models' evaluations (computing the missing ones); leads read models.
    ("POST", "api:training:reward-models-compare"): STAFF,
    ("POST", "api:training:reward-model-evaluate"): STAFF,
    # Active learning queues pairs for labeling: the ML engineers' loop, and a lead's queue.
    ("POST", "api:training:reward-active-learning"): STAFF,
    ("POST", "api:training:reward-score"): MLS,
    ("POST", "api:training:reward-score-jobs"): MLS,
    ("GET", "api:training:reward-score-job"): MLS,  # and only the job's own account
    ("POST", "api:training:reward-flow-factory-compute"): MLS,
    ("GET", "api:training:reward-flow-factory-health"): MLS,
    ("POST", "api:training:reward-openrlhf-get-reward"): MLS,
}

ACTIONS = ("view", "add", "change", "delete")


def _model(
    *,
    view: frozenset[str],
    add: frozenset[str] = NOBODY,
    change: frozenset[str] = NOBODY,
    delete: frozenset[str] = NOBODY,
) -> dict[str, frozenset[str]]:
    return {"view": view, "add": add, "change": change, "delete": delete}


def _lead_model(*, add: bool = True, change: bool = True) -> dict[str, frozenset[str]]:
    """Generation and annotation: leads change (where the admin adds or edits at all)."""
    return _model(
        view=STAFF, add=LEADS if add else NOBODY, change=LEADS if change else NOBODY, delete=LEADS
    )


# "app_label.model" -> action -> roles. NOBODY where the admin never does it, whoever asks:
# rows written only by the services or the workers are never added or edited by hand.
ADMIN_MODELS: dict[str, dict[str, frozenset[str]]] = {
    "auth.user": _model(view=LEADS, add=ADMINS, change=ADMINS, delete=ADMINS),
    "auth.group": _model(view=ADMINS, add=ADMINS, change=ADMINS, delete=ADMINS),
    # API tokens: who holds one, never its key; change = revoke. Issued by the API/command.
    "accounts.apitoken": _model(view=ADMINS, change=ADMINS, delete=ADMINS),
    # Lockouts (django-axes): deleting an attempt lifts its lock.
    "axes.accessattempt": _model(view=ADMINS, change=ADMINS, delete=ADMINS),
    "axes.accesslog": _model(view=ADMINS, change=ADMINS, delete=ADMINS),
    "axes.accessfailurelog": _model(view=ADMINS, change=ADMINS, delete=ADMINS),
    # generation: leads change, ML engineers read
    "generation_workers.vocabulary": _lead_model(),
    "generation_workers.generatorconfig": _lead_model(),
    "generation_workers.campaign": _lead_model(),
    # added on the build and import pages; a set never changes (a new spec: a new version)
    "generation_workers.promptset": _lead_model(change=False),
    "generation_workers.prompt": _lead_model(add=False, change=False),  # parts of their set
    "generation_workers.candidate": _lead_model(add=False, change=False),  # workers write them
    # annotation: leads change; ML engineers read the labeling summaries (queues, pairs,
    # annotators), never who answered what
    "annotation.labelingqueue": _lead_model(),
    "annotation.pair": _lead_model(),
    "annotation.annotatorprofile": _lead_model(),
    "annotation.pairbuild": _model(view=LEADS, add=LEADS, delete=LEADS),  # never edited
    "annotation.assignment": _model(view=LEADS, delete=LEADS),  # leases: the labeling loop's
    "annotation.judgment": _model(view=LEADS, delete=LEADS),  # what an annotator said
    "annotation.undonejudgment": _model(view=LEADS, delete=LEADS),
    "annotation.imagethumbnail": _model(view=LEADS, delete=LEADS),  # made by the image service
    # datasets: leads change (change = freeze, export), ML engineers read and download
    "training_bridge.dataset": _model(view=STAFF, add=LEADS, change=LEADS, delete=LEADS),
    "training_bridge.datasetversion": _model(view=STAFF, add=LEADS, change=LEADS, delete=LEADS),
    "training_bridge.datasetrecord": _model(view=STAFF),  # a frozen version's snapshot
    "training_bridge.datasetexport": _model(view=STAFF, change=LEADS),  # change = export again
    # training and reward models: ML engineers change, leads read
    "training_bridge.trainingrun": _model(view=STAFF, add=MLS, change=MLS, delete=MLS),
    "training_bridge.trainingmetric": _model(view=STAFF, delete=MLS),  # written by the run
    # added by runs or on the "Register a checkpoint" page
    "training_bridge.rewardmodel": _model(view=STAFF, add=MLS, change=MLS, delete=MLS),
    # launcher definitions run code on the training workers: only an admin writes them
    "training_bridge.traininglauncher": _model(
        view=STAFF, add=ADMINS, change=ADMINS, delete=ADMINS
    ),
}


# -- who is asking -------------------------------------------------------------------------


def user_roles(user: Any, *, memo: Any = None) -> frozenset[str]:
    """The caller's roles: {anonymous}, {admin} for a superuser, else their role groups.

    `memo`: an object that lives no longer than the answer may, to keep it on: an admin page's
    request (which asks a dozen times), or the API's token as its check is remembered
    (accounts/authentication.py: a removed role then counts within AUTH_REMEMBER_SECONDS, as a
    revoked token does). Never the user: a session's user is loaded per request, but nothing
    says how long another caller keeps it."""
    if user is None or not user.is_authenticated:
        return frozenset({ANONYMOUS})
    kept = getattr(memo, "_role_matrix_roles", None)
    if kept is not None and kept[0] == user.pk:
        return kept[1]
    if user.is_superuser:
        roles = frozenset({ADMIN})
    else:
        names = {group.name for group in user.groups.all()}
        roles = frozenset(r for r in (ANNOTATOR, LEAD, ML) if r.value in names)
    if memo is not None:
        memo._role_matrix_roles = (user.pk, roles)
    return roles


def roles_allow(user: Any, roles: frozenset[str], *, memo: Any = None) -> bool:
    if ANONYMOUS in roles:
        return True
    if user is None or not user.is_authenticated or not user.is_active:
        return False
    if roles >= SIGNED_IN:
        return True  # no group lookup on the labeling loop
    return bool(user_roles(user, memo=memo) & roles)


def api_roles(*, method: str, view_name: str) -> frozenset[str] | None:
    """The roles of one operation; None when it has no row."""
    if method == "HEAD":
        method = "GET"
    if method == "OPTIONS":
        rows = [roles for (m, name), roles in API.items() if name == view_name]
        return frozenset().union(*rows) if rows else None
    return API.get((method, view_name))


def api_allows(user: Any, *, method: str, view_name: str, memo: Any = None) -> bool:
    """Whether the user may call the operation (admin pages doing the same work ask this)."""
    roles = api_roles(method=method, view_name=view_name)
    return roles is not None and roles_allow(user, roles, memo=memo)


def admin_allows(user: Any, *, model: str, action: str, memo: Any = None) -> bool:
    """Whether the user may `action` ("view", "add", "change", "delete") the admin model
    "app_label.model"; no row: nobody."""
    roles = ADMIN_MODELS.get(model, {}).get(action)
    return roles is not None and roles_allow(user, roles, memo=memo)


def token_issue_allowed(user: Any) -> bool:
    return roles_allow(user, TOKEN_ROLES)


# -- the API -------------------------------------------------------------------------------


class RolePermission(BasePermission):
    """The REST framework's default permission: the caller's roles against `API`."""

    message = "this operation is not available to your role"

    def has_permission(self, request: Request, view: APIView) -> bool:
        method = request.method.upper()
        if method not in ("HEAD", "OPTIONS") and method not in view.allowed_methods:
            return True  # the view answers 405: there is nothing behind it to protect
        match = request.resolver_match
        view_name = match.view_name if match is not None else None
        roles = api_roles(method=method, view_name=view_name) if view_name else None
        if roles is None:
            log.error("permissions.no_row method=%s view=%s", method, view_name)
            return False
        # Roles kept on a token live as long as its remembered check; a session has no token.
        return roles_allow(request.user, roles, memo=request.auth)


# -- the admin -----------------------------------------------------------------------------


def _label(model: Any) -> str:
    return model._meta.label_lower


class RoleMatrixAdmin:
    """Put before admin.ModelAdmin: the four permissions of the model's row. A subclass may
    narrow them per object (a frozen version is never deleted) by calling super()."""

    def _role_allows(self, request: Any, action: str) -> bool:
        return admin_allows(request.user, model=_label(self.model), action=action, memo=request)

    def has_view_permission(self, request: Any, obj: Any = None) -> bool:
        return self._role_allows(request, "view") or self._role_allows(request, "change")

    def has_add_permission(self, request: Any) -> bool:
        return self._role_allows(request, "add")

    def has_change_permission(self, request: Any, obj: Any = None) -> bool:
        return self._role_allows(request, "change")

    def has_delete_permission(self, request: Any, obj: Any = None) -> bool:
        return self._role_allows(request, "delete")

    def has_module_permission(self, request: Any) -> bool:
        return any(self._role_allows(request, action) for action in ACTIONS)


class RoleMatrixInline:
    """Put before an InlineModelAdmin: rows shown in a parent's page follow the parent's row
    (adding an example image to a queue is changing the queue, or adding it)."""

    def _parent_allows(self, request: Any, action: str) -> bool:
        return admin_allows(
            request.user, model=_label(self.parent_model), action=action, memo=request
        )

    def _writes(self, request: Any, parent: Any) -> bool:
        return self._parent_allows(request, "add" if parent is None else "change")

    def has_view_permission(self, request: Any, obj: Any = None) -> bool:
        return self._parent_allows(request, "view") or self._parent_allows(request, "change")

    def has_add_permission(self, request: Any, obj: Any = None) -> bool:
        return self._writes(request, obj)

    def has_change_permission(self, request: Any, obj: Any = None) -> bool:
        return self._writes(request, obj)

    def has_delete_permission(self, request: Any, obj: Any = None) -> bool:
        return self._writes(request, obj)
