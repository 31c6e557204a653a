"""Admin of API tokens: which tokens exist, per account, and revoking them; never their keys.

The key exists only in the answer that issued it (POST /api/auth/token/, `manage.py
create_token`); the table holds its digest, which no page shows. Tokens are listed on their
own page and on each user's page.
"""

from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin
from django.utils import timezone

from accounts.models import ApiToken
from accounts.services import api_token_revoke
from config.permissions import RoleMatrixAdmin, admin_allows

SHOWN = ["user", "name", "prefix", "created_at", "expires_at", "last_used_at", "revoked_at"]


def _state(token: ApiToken) -> str:
    if token.revoked_at is not None:
        return "revoked"
    return "expired" if token.expires_at <= timezone.now() else "live"


@admin.register(ApiToken)
class ApiTokenAdmin(RoleMatrixAdmin, admin.ModelAdmin):
    list_display = [
        "prefix", "user", "name", "state", "created_at", "expires_at", "last_used_at",
        "revoked_at",
    ]  # fmt: skip
    list_filter = ["revoked_at", "expires_at"]
    search_fields = ["user__username", "prefix", "name"]
    list_select_related = ["user"]
    fields = SHOWN
    readonly_fields = SHOWN
    actions = ["revoke"]
    show_full_result_count = False

    @admin.display(description="state")
    def state(self, obj: ApiToken) -> str:
        return _state(obj)

    @admin.action(description="Revoke the selected tokens", permissions=["change"])
    def revoke(self, request, queryset):
        ids = list(queryset.filter(revoked_at__isnull=True).values_list("pk", flat=True))
        for token_id in ids:
            api_token_revoke(token_id=token_id)
        self.message_user(request, f"{len(ids)} tokens revoked.")

    def save_model(self, request, obj, form, change):
        """Every field is read-only: tokens change only by being revoked."""


class ApiTokenInline(admin.TabularInline):
    """Read-only on the user page; the token list's rows decide who sees it."""

    model = ApiToken
    fields = ["prefix", "name", "state", "created_at", "expires_at", "last_used_at", "revoked_at"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True
    verbose_name_plural = "API tokens (prefixes only; revoke them on the token list)"

    def has_view_permission(self, request, obj=None) -> bool:
        return admin_allows(request.user, model="accounts.apitoken", action="view")

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="state")
    def state(self, obj: ApiToken) -> str:
        return _state(obj)


User = get_user_model()
if admin.site.is_registered(User):
    admin.site.unregister(User)


@admin.register(User)
class UserWithTokensAdmin(UserAdmin):
    """Django's user admin (its permissions: the groups', from the role matrix) and the
    account's tokens."""

    inlines = [*UserAdmin.inlines, ApiTokenInline]
