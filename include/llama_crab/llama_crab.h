// Everything public in one include: the high-level API (Llama, ChatSession) and the low-level layer under it.
#pragma once

#include "llama_crab/batch.h"
#include "llama_crab/cache.h"
#include "llama_crab/chat.h"
#include "llama_crab/chat_session.h"
#include "llama_crab/context.h"
#include "llama_crab/error.h"
#include "llama_crab/grammar.h"
#include "llama_crab/llama.h"
#include "llama_crab/model.h"
#include "llama_crab/sampling.h"
#include "llama_crab/session.h"
#include "llama_crab/system.h"
#include "llama_crab/text.h"
