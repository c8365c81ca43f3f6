"""Users: contacts, time zone and locale, and notification preferences.

User ids are the tenant's own (`core.security.tenants`): the store holds them qualified, and
answers show them as the tenant sent them.
"""

from __future__ import annotations

from typing import Annotated, Any

from botocore.exceptions import ClientError
from fastapi import APIRouter, HTTPException, Path, Response, status
from starlette.concurrency import run_in_threadpool

from api.deps import DirectoryLimit, PageCursor, ServicesDep, TenantDep
from api.schemas import ID_PATTERN, Problem
from api.schemas_discovery import UserPage, UserSummary
from api.schemas_users import PreferencesIn, UserIn, UserOut
from core.aws import errors as aws_errors
from core.directory.devices import DeviceRegistry, PlatformNotSetUp
from core.directory.listing import SORT
from core.directory.profiles import Preferences
from core.security.chat_hosts import webhook_url_problem

router = APIRouter(prefix="/users", tags=["users"])

UserId = Annotated[str, Path(pattern=ID_PATTERN, description="The product's own user id.")]

MAX_PUSH_ENDPOINTS = 20  # as ProfileFields.push_endpoints allows

NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": Problem, "description": "No such user."}
}
INVALID: dict[int | str, dict[str, Any]] = {
    422: {"model": Problem, "description": "Invalid input; the message names the field."}
}


def no_user(user_id: str) -> HTTPException:
    return HTTPException(404, f"user_id: no user {user_id!r}")


def with_device_endpoints(devices: DeviceRegistry, body: UserIn, user_id: str) -> UserIn:
    """The body with each device token's SNS endpoint added to push_endpoints."""
    arns = list(body.push_endpoints)
    for index, device in enumerate(body.devices):
        try:
            arn = devices.register(device.platform, device.token, user_id)
        except PlatformNotSetUp as exc:
            raise HTTPException(422, f"devices.{index}.platform: {exc}") from None
        except ClientError as exc:
            if aws_errors.error_code(exc) != "InvalidParameter":
                raise
            raise HTTPException(422, f"devices.{index}.token: SNS refused the token") from None
        if arn not in arns:
            arns.append(arn)
    if len(arns) > MAX_PUSH_ENDPOINTS:
        raise HTTPException(422, f"devices: at most {MAX_PUSH_ENDPOINTS} push endpoints in all")
    return body.model_copy(update={"push_endpoints": arns})


@router.put(
    "/{user_id}",
    response_model=UserOut,
    responses={201: {"model": UserOut, "description": "Created."}, **INVALID},
    summary="Create or replace a user's contacts, time zone and locale",
    description="Preferences are kept (set them with PUT /users/{user_id}/preferences).",
)
async def put_user(
    user_id: UserId, body: UserIn, services: ServicesDep, tenant: TenantDep, response: Response
) -> UserOut:
    if body.chat is not None:
        problem = webhook_url_problem(body.chat.url, services.settings.chat_webhook_host_patterns)
        if problem is not None:
            raise HTTPException(422, f"chat.url: {problem}")
    if body.devices:
        body = await run_in_threadpool(
            with_device_endpoints, services.devices, body, tenant.qualify(user_id)
        )
    profile, created = await run_in_threadpool(
        services.users.put_profile, tenant.qualify(user_id), body
    )
    if created:
        response.status_code = status.HTTP_201_CREATED
    return UserOut.model_validate({**profile.model_dump(), "user_id": user_id})


@router.get(
    "",
    response_model=UserPage,
    responses={422: {"model": Problem, "description": "Bad limit or a foreign cursor."}},
    summary="The tenant's users, by id, a page at a time (ids and dates, no contacts)",
)
async def list_users(
    services: ServicesDep,
    tenant: TenantDep,
    limit: DirectoryLimit = 100,
    cursor: PageCursor = None,
) -> UserPage:
    page = await run_in_threadpool(services.directory.page, "USER", tenant.name, limit, cursor)
    return UserPage(
        items=[
            UserSummary(
                user_id=item[SORT],
                created_at=item.get("created_at"),
                updated_at=item.get("updated_at"),
            )
            for item in page.items
        ],
        next_cursor=page.next_cursor,
    )


@router.get("/{user_id}", response_model=UserOut, responses=NOT_FOUND, summary="One user")
async def get_user(user_id: UserId, services: ServicesDep, tenant: TenantDep) -> UserOut:
    profile = await run_in_threadpool(services.users.get, tenant.qualify(user_id))
    if profile is None:
        raise no_user(user_id)
    return UserOut.model_validate({**profile.model_dump(), "user_id": user_id})


@router.delete(
    "/{user_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    summary="Delete a user and every topic subscription of theirs",
    description="Idempotent: deleting a user that does not exist is also 204.",
)
async def delete_user(user_id: UserId, services: ServicesDep, tenant: TenantDep) -> Response:
    await run_in_threadpool(services.users.delete, tenant.qualify(user_id))
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.put(
    "/{user_id}/preferences",
    response_model=Preferences,
    responses={**NOT_FOUND, **INVALID},
    summary="Replace a user's channels per category, opt-outs and quiet hours",
)
async def put_preferences(
    user_id: UserId, body: PreferencesIn, services: ServicesDep, tenant: TenantDep
) -> Preferences:
    profile = await run_in_threadpool(services.users.set_preferences, tenant.qualify(user_id), body)
    if profile is None:
        raise no_user(user_id)
    return profile.preferences
