"""The OpenAPI schema class: drf-spectacular's, told which operations anonymous callers may use.

drf-spectacular marks an operation as open to anonymous callers (an empty security
requirement, `{}`) only for AllowAny; here the role matrix (config/permissions.py) says so
instead (health, the token login). config/schema.py's hook reads that mark: where it is, no
401/403 is listed.
"""

import re

from django.urls import Resolver404, resolve
from drf_spectacular.openapi import AutoSchema

from config.permissions import ANONYMOUS, api_roles


class RoleMatrixSchema(AutoSchema):
    def get_auth(self) -> list:
        auths = super().get_auth()
        try:
            view_name = resolve(re.sub(r"\{[^}/]+\}", "1", self.path)).view_name
        except Resolver404:
            return auths
        roles = api_roles(method=self.method.upper(), view_name=view_name)
        if roles is not None and ANONYMOUS in roles and {} not in auths:
            auths.append({})
        return auths
