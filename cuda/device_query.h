// device_query.h: host-side queries of the CUDA runtime, implemented in device_query.cu.
// Never throws; safe to call without a driver (returns 0 and says why). Any thread.
#pragma once
#include <string>

namespace ssd {

// Number of usable CUDA devices; 0 with `why` set when the driver/runtime reports an error.
int cuda_query_device_count(std::string* why);

}  // namespace ssd
