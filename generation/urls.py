from django.urls import path

from generation import views

app_name = "generation"
urlpatterns = [
    path("tiles/<int:pk>.png", views.tile_image, name="tile-image"),
]
