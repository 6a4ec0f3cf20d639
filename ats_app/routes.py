"""Page routes in one place so links and redirects never drift apart."""

LOGIN = "/login"
REGISTER = "/register"
OVERVIEW = "/"
SETTINGS = "/settings"
