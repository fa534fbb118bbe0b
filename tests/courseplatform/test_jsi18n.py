"""The JavaScript catalogue is served in the language the page asks for."""

import pytest

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("language", "expected"),
    # English has the UI's words; Russian needs the catalogue for its three plural forms.
    [("en", '"Run"'), ("ru", "n%10>=2 && n%10<=4")],
)
def test_the_javascript_catalogue_answers_in_the_chosen_language(client, language, expected):
    client.cookies["django_language"] = language
    response = client.get(f"/jsi18n/?lang={language}")
    assert response.status_code == 200
    assert expected in response.content.decode()
