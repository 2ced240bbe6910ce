/* unix_scm_skip.c's cases over named datagram sockets, connected both ways and from an
 * autobound sender: a datagram with SCM_RIGHTS is the kernel's to carry (the shim queues a
 * marker in its place), so data moves through kernel sockets here.
 * kernel-sockets: allowed */
#define NAMED_DGRAM
#include "unix_scm_skip.c"
