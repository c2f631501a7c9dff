"""Dependency aliases for the routes. The services are built by bootstrap and hung on
app.state by main.create_app, so a test app with fakes resolves them the same way."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from retarget.ingest.bootstrap import IngestServices
from retarget.ingest.intake import Intake
from retarget.ingest.settings import IngestSettings


def get_services(request: Request) -> IngestServices:
    return request.app.state.services  # type: ignore[no-any-return]


def get_intake(request: Request) -> Intake:
    return get_services(request).intake


def get_settings(request: Request) -> IngestSettings:
    return get_services(request).settings


ServicesDep = Annotated[IngestServices, Depends(get_services)]
IntakeDep = Annotated[Intake, Depends(get_intake)]
SettingsDep = Annotated[IngestSettings, Depends(get_settings)]
