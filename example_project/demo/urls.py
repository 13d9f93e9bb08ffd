from django.contrib.auth import views as auth_views
from django.urls import path

from . import views

urlpatterns = [
    path("", views.index, name="index"),
    path("emit/<str:event>/", views.emit_task, name="emit"),
    path("live/", views.live, name="live"),
    path("live/feed/", views.feed, name="feed"),
    path("login/", auth_views.LoginView.as_view(template_name="demo/login.html"), name="login"),
    path("logout/", auth_views.LogoutView.as_view(next_page="login"), name="logout"),
]
