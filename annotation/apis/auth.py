"""Authentication of the labeling loop: sessions (the browser) and API tokens.

The token check is accounts/authentication.py's (one lookup by the key's digest, a prepared
statement on PostgreSQL) with its success remembered per process for AUTH_REMEMBER_SECONDS
(config/remembered.py): an annotator's requests then mostly skip the round trip. A revoked
or expired token or a deactivated account stops working within that interval. Every labeling
statement checks the queue's access list itself. Annotators get tokens only from an admin
(`manage.py create_token`, e.g. for load tests); in the browser they use their session.
"""

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework.authentication import SessionAuthentication

from accounts.authentication import ApiTokenAuthentication
from config.remembered import Remembered


class LabelingTokenAuthentication(ApiTokenAuthentication):
    memory = Remembered()


LABELING_AUTHENTICATION = [SessionAuthentication, LabelingTokenAuthentication]


class LabelingTokenScheme(OpenApiAuthenticationExtension):
    """The OpenAPI security scheme of LabelingTokenAuthentication (the same header)."""

    target_class = LabelingTokenAuthentication
    name = "labelingTokenAuth"

    def get_security_definition(self, auto_schema):
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": 'API token, sent as "Token <key>"',
        }
