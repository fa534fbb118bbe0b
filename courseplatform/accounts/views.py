"""Sign-up and log-in, throttled; the rest of the account pages are Django's own auth views."""

from django.conf import settings
from django.contrib.auth import login
from django.contrib.auth.views import LoginView
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.decorators import method_decorator
from django.views.decorators.http import require_http_methods

from courseplatform.metrics import refusal_count

from .forms import InvitationRefused, SignupForm
from .throttle import TOO_MANY, login_by_ip, login_by_username, signup_by_ip, throttled

TOO_MANY_REQUESTS = 429


@require_http_methods(["GET", "POST"])
@signup_by_ip
def signup(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated:
        return redirect("lessons:home")
    if settings.SIGNUP_MODE == "closed":
        return render(request, "registration/signup_closed.html", status=403)
    form = SignupForm(request.POST or None)
    if request.method == "POST" and throttled(request):
        refusal_count(reason="signup_throttled")
        form.is_valid()
        form.add_error(None, TOO_MANY)
        return render(request, "registration/signup.html", {"form": form}, status=TOO_MANY_REQUESTS)
    if request.method == "POST" and form.is_valid():
        try:
            user = form.save()
        except InvitationRefused:
            return render(request, "registration/signup.html", {"form": form})
        login(request, user)
        return redirect("lessons:home")
    return render(request, "registration/signup.html", {"form": form})


@method_decorator([login_by_ip, login_by_username], name="post")
class ThrottledLoginView(LoginView):
    """Django's login, refusing (429, with the reason on the form) past the per-address or per-name rate."""

    redirect_authenticated_user = True

    def post(self, request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if not throttled(request):
            return super().post(request, *args, **kwargs)
        refusal_count(reason="login_throttled")
        # Not validated: that would try the password, which is what the limit is there to stop.
        form = self.get_form_class()(request, initial={"username": request.POST.get("username", "")})
        form.cleaned_data = {}
        form.add_error(None, TOO_MANY)
        return self.render_to_response(self.get_context_data(form=form), status=TOO_MANY_REQUESTS)
