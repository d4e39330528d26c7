/* model.c: being written */
#include "internal.h"
