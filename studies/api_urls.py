from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView
from rest_framework.routers import SimpleRouter

from studies import api, api_staff

router = SimpleRouter()
router.register("assignments", api.ReaderAssignmentViewSet, basename="assignment")
router.register("studies", api_staff.StaffStudyViewSet, basename="study")

app_name = "api"
urlpatterns = [
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("", include(router.urls)),
]
