"""The operator web page: plain HTML/JS/CSS from ``facegate/service/static`` at ``/ui/`` (no build
step), and ``/`` sending a browser there. Outside the schema."""

from __future__ import annotations

from importlib import resources
from importlib.resources.abc import Traversable

from fastapi import APIRouter, FastAPI
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles

router = APIRouter(include_in_schema=False)


def static_dir() -> Traversable:
    """The page's files, inside the installed package."""
    return resources.files("facegate.service").joinpath("static")


@router.get("/")
async def root() -> RedirectResponse:
    return RedirectResponse("/ui/")


def install(app: FastAPI) -> None:
    """Serve the page on ``app``. The files are mounted on the app itself, when it is built: FastAPI
    before 0.16x drops a router's mounts on include, and a mount at import would look for the folder then."""
    app.include_router(router)
    app.mount("/ui", StaticFiles(directory=str(static_dir()), html=True), name="ui")
