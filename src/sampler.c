/* sampler.c: being written */
#include "internal.h"
