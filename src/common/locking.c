/* See locking.h: how many of nestls's locks this thread holds. */
#include "common/locking.h"

__thread int nl_lock_depth;
