from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from django.views.generic import TemplateView

from generation import staff_urls as generation_staff
from studies import staff_urls as studies_staff

# staff pages of both apps, under one namespace
dashboards = ([*generation_staff.urlpatterns, *studies_staff.urlpatterns], "dashboards")

urlpatterns = [
    path("", TemplateView.as_view(template_name="home.html"), name="home"),
    path(
        "accounts/login/",
        auth_views.LoginView.as_view(redirect_authenticated_user=True),
        name="login",
    ),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    path("generation/", include("generation.urls")),
    path("read/", include("studies.urls")),
    path("api/v1/", include("studies.api_urls")),
    path("dashboards/", include(dashboards)),
]
