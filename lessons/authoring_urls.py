from django.urls import path

from . import authoring_class_views as class_views
from . import authoring_views as views

app_name = "authoring"
urlpatterns = [
    path("", views.index, name="index"),
    path("courses/new", views.course_create, name="course_create"),
    path("import", views.course_import_view, name="course_import"),
    path("verify/<str:job>", views.verify_result, name="verify_result"),
    path("<slug:course>/", views.course_page, name="course"),
    path("<slug:course>/publish", views.course_publish, name="course_publish"),
    path("<slug:course>/reorder", views.course_reorder, name="course_reorder"),
    path("<slug:course>/preview", views.preview, name="preview"),
    path("<slug:course>/export.zip", views.course_export, name="course_export"),
    path("<slug:course>/class/", class_views.class_view, name="class"),
    path("<slug:course>/class/<int:user_id>/<slug:broker>/<slug:action>", class_views.class_sandbox_action, name="class_sandbox"),
    path("<slug:course>/class/bookings/new", class_views.class_booking_create, name="class_booking_create"),
    path("<slug:course>/class/bookings/<int:booking>/cancel", class_views.class_booking_cancel, name="class_booking_cancel"),
    path("<slug:course>/chapters/new", views.chapter_new, name="chapter_new"),
    path("<slug:course>/chapters/create", views.chapter_create, name="chapter_create"),
    path("<slug:course>/<slug:chapter>/edit", views.chapter_edit, name="chapter_edit"),
    path("<slug:course>/<slug:chapter>/save", views.chapter_save, name="chapter_save"),
    path("<slug:course>/<slug:chapter>/publish", views.chapter_publish, name="chapter_publish"),
    path("<slug:course>/<slug:chapter>/history", views.chapter_history, name="chapter_history"),
    path("<slug:course>/<slug:chapter>/restore/<int:number>", views.chapter_restore, name="chapter_restore"),
    path("<slug:course>/<slug:chapter>/exercises/<slug:exercise>/verify", views.exercise_verify, name="exercise_verify"),
]
