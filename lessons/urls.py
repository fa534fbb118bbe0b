from django.urls import path

from . import views

app_name = "lessons"
urlpatterns = [
    path("", views.home, name="home"),
    path("courses/<slug:course>/", views.course_page, name="course"),
    path("courses/<slug:course>/assets/<path:path>", views.asset, name="asset"),
    # Before the chapters: "glossary" is not a chapter's slug (docs/course-format.md).
    path("courses/<slug:course>/glossary/", views.glossary_page, name="glossary"),
    path("courses/<slug:course>/<slug:chapter>/", views.chapter_page, name="chapter"),
    path("courses/<slug:course>/<slug:chapter>/read", views.chapter_read, name="chapter_read"),
    path("courses/<slug:course>/<slug:chapter>/position", views.chapter_position, name="chapter_position"),
    path("courses/<slug:course>/<slug:chapter>/steps/<int:step>", views.chapter_step, name="chapter_step"),
    path("courses/<slug:course>/<slug:chapter>/cells/<slug:cell>/draft", views.cell_draft, name="cell_draft"),
]
