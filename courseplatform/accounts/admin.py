from django.contrib import admin

from .models import Invitation


@admin.register(Invitation)
class InvitationAdmin(admin.ModelAdmin):
    list_display = ("code", "note", "uses_left", "expires_at", "created_by", "created_at")
    readonly_fields = ("created_at",)
