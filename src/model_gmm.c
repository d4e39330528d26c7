/* model_gmm.c: being written */
#include "internal.h"
