"""The UI language: Russian (the course's language) unless the learner picked another.

Django's LocaleMiddleware would follow the browser's Accept-Language, which
shows most visitors an English frame around a Russian course; here only an
explicit choice (the language cookie set by the switcher) changes it. The live
WebSocket reads the same cookie (``language_chosen``), so what the server says
there is in the page's language.
"""

from collections.abc import Callable, Mapping

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils import translation


def language_chosen(cookies: Mapping[str, str]) -> str:
    """The UI language the learner picked (the language cookie), else the site's default."""
    chosen = cookies.get(settings.LANGUAGE_COOKIE_NAME)
    return chosen if chosen in {code for code, _ in settings.LANGUAGES} else settings.LANGUAGE_CODE


class ChosenLanguageMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        language = language_chosen(request.COOKIES)
        request.LANGUAGE_CODE = language
        # Only for this request: the thread's language goes back afterwards, so it cannot leak into
        # whatever the thread does next (the next request, a test's management command).
        with translation.override(language):
            response = self.get_response(request)
        response.headers.setdefault("Content-Language", language)
        return response
