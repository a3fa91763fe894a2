// The Pod sandbox's process: holds the Pod's namespaces open and does nothing else, like
// registry.k8s.io/pause (which no registry here can serve). It exits on SIGINT or SIGTERM, so the
// runtime stops a sandbox at once instead of waiting out its grace period, and as PID 1 of the
// Pod's PID namespace (shareProcessNamespace) it reaps the zombies orphans leave behind.
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static void on_stop(int signo) {
  (void)signo;
  _exit(0);
}

static void on_child(int signo) {
  (void)signo;
  while (waitpid(-1, NULL, WNOHANG) > 0) {
  }
}

static int handle(int signo, void (*handler)(int), int flags) {
  struct sigaction action;
  memset(&action, 0, sizeof action);
  action.sa_handler = handler;
  action.sa_flags = flags;
  sigemptyset(&action.sa_mask);
  return sigaction(signo, &action, NULL);
}

int main(void) {
  if (getpid() != 1) {
    // The real pause warns the same way: outside a PID namespace it would reap nobody's children.
    fprintf(stderr, "pause: not running as PID 1\n");
  }
  if (handle(SIGINT, on_stop, 0) < 0 || handle(SIGTERM, on_stop, 0) < 0 ||
      handle(SIGCHLD, on_child, SA_NOCLDSTOP) < 0) {
    perror("pause: sigaction");
    return 1;
  }
  for (;;) {
    pause();
  }
}
