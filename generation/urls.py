from django.urls import path

from generation import views

app_name = "generation"
urlpatterns = [
    path("tiles/<int:pk>.png", views.tile_image, name="tile-image"),
    path("generators/<int:pk>/<str:kind>.png", views.generator_preview, name="generator-preview"),
    path("evaluations/<int:pk>.png", views.evaluation_plot, name="evaluation-plot"),
    path(
        "experiments/<slug:name>/<str:filename>",
        views.experiment_image,
        name="experiment-image",
    ),
]
