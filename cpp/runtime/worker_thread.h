// worker_thread.h: start_worker(), how the engine starts its target and draft worker threads.
//
// Concept: a worker thread first runs its model runner's on_worker_start() (pinning, thread count,
// helper threads) and only then its loop; the thread that starts it waits for that first step, so a
// worker that cannot start fails the Engine constructor instead of failing (or spinning on) every
// request later. Used by TargetWorker::start() and DraftWorker::start().
//
// Threads: start_worker() is called by the thread constructing the Engine; `loop` runs on the new thread.
#pragma once
#include <exception>
#include <future>
#include <string>
#include <thread>
#include <utility>

#include "model_runner.h"

namespace ssd {

// Starts `*thread`, which calls runner->on_worker_start() and then, if that succeeded, loop(). Returns
// "" once the worker is running, or "the <side> worker could not start: <error>" after the thread
// ended (joined).
template <class Loop>
std::string start_worker(std::thread* thread, ModelRunner* runner, const char* side, Loop loop) {
  std::promise<std::string> started;
  std::future<std::string> result = started.get_future();
  *thread = std::thread([runner, side, loop = std::move(loop), p = std::move(started)]() mutable {
    try {
      runner->on_worker_start();
    } catch (const std::exception& e) {
      p.set_value(std::string("the ") + side + " worker could not start: " + e.what());
      return;
    }
    p.set_value("");
    loop();
  });
  std::string error = result.get();
  if (!error.empty() && thread->joinable()) thread->join();
  return error;
}

}  // namespace ssd
