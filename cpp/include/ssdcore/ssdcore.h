// ssdcore/ssdcore.h: the whole public C++ API of ssdcore (include this one header).
//
//   ssdcore/version.h       SSDCORE_VERSION_*, ssdcore::version()
//   ssdcore/config.h        ssdcore::EngineConfig
//   ssdcore/sampling.h      ssdcore::SamplingParams
//   ssdcore/device.h        ssdcore::DeviceType
//   ssdcore/model_runner.h  ssdcore::ModelRunner (you implement it), ForwardBatch, Logits
//   ssdcore/stats.h         ssdcore::StatsSnapshot
//   ssdcore/request.h       ssdcore::FinishReason, ErrorKind, RequestMetrics
//   ssdcore/token_masker.h  ssdcore::TokenMasker (structured output), MaskRow
//   ssdcore/engine.h        ssdcore::Engine, Result, Event, TokenCallback
//
// Link with the CMake target ssdcore::ssdcore (find_package(ssdcore CONFIG REQUIRED)); see
// docs/native.md. The API uses only the C++17 standard library and is also valid C++20.
#pragma once

#include "ssdcore/version.h"
#include "ssdcore/config.h"
#include "ssdcore/sampling.h"
#include "ssdcore/device.h"
#include "ssdcore/model_runner.h"
#include "ssdcore/stats.h"
#include "ssdcore/request.h"
#include "ssdcore/token_masker.h"
#include "ssdcore/engine.h"
