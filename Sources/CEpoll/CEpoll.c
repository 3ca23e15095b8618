// Nothing to compile: the target exists for include/CEpoll.h.
#include "CEpoll.h"
