# Sourced by the scripts that install what they need from the distribution's packages (PostgreSQL
# and Redis for every run, Chromium for the browser test): as root, or through passwordless sudo,
# never asking. The sourcing script defines `say`.

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"
  elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then sudo "$@"
  else say "need root to run: $*"; return 1; fi
}

install_packages() {
  command -v apt-get >/dev/null || { say "no apt-get here: install $* yourself"; return 1; }
  say "installing $* from the distribution's packages"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >/dev/null \
    || { as_root apt-get update -q >/dev/null && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >/dev/null; }
}
