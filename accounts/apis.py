"""API tokens over the API: obtain one with a password, revoke the one in use, revoke all.

Obtaining is a login: django-axes counts its failures with the two login pages' (settings:
LOGIN_FAILURE_LIMIT, LOGIN_COOLOFF_MINUTES) and, once locked, its middleware answers 429
(accounts/lockout.py) whatever the password.
"""

from django.contrib.auth import authenticate, user_logged_in
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.models import ApiToken
from accounts.services import api_token_issue, api_token_revoke, api_tokens_revoke_all
from config.errors import ValidationFailed


class TokenErrorSerializer(serializers.Serializer):
    error = serializers.CharField()
    detail = serializers.CharField()
    field = serializers.CharField(required=False)


class TokenRequestSerializer(serializers.Serializer):
    username = serializers.CharField(max_length=150)
    password = serializers.CharField(max_length=4096, trim_whitespace=False)
    name = serializers.CharField(
        max_length=100, required=False, default="", help_text="What the token is for."
    )


class TokenSerializer(serializers.Serializer):
    token = serializers.CharField(help_text="The key, shown this once: send `Token <key>`.")
    prefix = serializers.CharField(help_text="Its first characters, as the admin lists it.")
    name = serializers.CharField()
    expires_at = serializers.DateTimeField()


class RevokedSerializer(serializers.Serializer):
    revoked = serializers.IntegerField(help_text="How many live tokens were revoked.")


class LockedOutSerializer(serializers.Serializer):
    error = serializers.CharField(help_text="locked_out")
    detail = serializers.CharField()
    retry_after = serializers.IntegerField(help_text="Seconds; also the Retry-After header.")


class TokenObtainApi(APIView):
    authentication_classes: list = []  # the credentials are in the body

    @extend_schema(
        operation_id="auth_token_create",
        request=TokenRequestSerializer,
        responses={
            200: TokenSerializer,
            400: OpenApiResponse(
                TokenErrorSerializer, description="Bad input or wrong credentials."
            ),
            403: OpenApiResponse(
                TokenErrorSerializer, description="Not for this role (annotators use the browser)."
            ),
            429: OpenApiResponse(
                LockedOutSerializer, description="Too many failed logins: locked for a while."
            ),
        },
        description="A new API token for a lead, ML engineer or admin; it expires after "
        "API_TOKEN_LIFETIME_DAYS. Only its digest is stored: keep the key.",
    )
    def post(self, request: Request) -> Response:
        body = TokenRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        # The Django request: django-axes marks it, and its middleware turns a lockout into 429.
        django_request = request._request
        user = authenticate(django_request, username=data["username"], password=data["password"])
        if user is None:
            raise ValidationFailed(
                "unable to log in with the username and password given", code="invalid_credentials"
            )
        issued = api_token_issue(user=user, name=data["name"])
        # A token login counts as a login: django-axes resets the failures, last_login moves.
        user_logged_in.send(sender=user.__class__, request=django_request, user=user)
        token = issued.token
        return Response(
            {
                "token": issued.key,
                "prefix": token.prefix,
                "name": token.name,
                "expires_at": serializers.DateTimeField().to_representation(token.expires_at),
            }
        )


def _current_token(request: Request) -> ApiToken:
    if not isinstance(request.auth, ApiToken):
        raise ValidationFailed(
            "this request is not authenticated with an API token", field="authorization"
        )
    return request.auth


class TokenRevokeApi(APIView):
    @extend_schema(
        operation_id="auth_token_revoke",
        request=None,
        responses={200: RevokedSerializer, 400: TokenErrorSerializer},
        description="Revoke the token this request is authenticated with.",
    )
    def post(self, request: Request) -> Response:
        token = _current_token(request)
        api_token_revoke(token_id=token.pk, user=request.user)
        return Response({"revoked": 1})


class TokenRevokeAllApi(APIView):
    @extend_schema(
        operation_id="auth_token_revoke_all",
        request=None,
        responses={200: RevokedSerializer},
        description="Revoke every live token of the caller's account.",
    )
    def post(self, request: Request) -> Response:
        return Response({"revoked": api_tokens_revoke_all(user=request.user)})
