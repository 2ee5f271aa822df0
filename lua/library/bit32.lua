---@meta bit32

-- LuaLS annotations for the `bit32` global of Tidings modules: Lua 5.2's bit operations on
-- 32-bit unsigned numbers, provided in the Lua 5.1 sandbox. Never run by the server.

---Lua 5.2's bitwise operations on 32-bit unsigned integers.
---@class bit32lib
bit32 = {}

---Bitwise AND of all arguments.
---@param ... integer
---@return integer
function bit32.band(...) end

---Bitwise OR of all arguments.
---@param ... integer
---@return integer
function bit32.bor(...) end

---Bitwise exclusive OR of all arguments.
---@param ... integer
---@return integer
function bit32.bxor(...) end

---Bitwise NOT of `x` (`bit32.bnot(0) == 4294967295`).
---@param x integer
---@return integer
function bit32.bnot(x) end

---Whether the bitwise AND of all arguments is not zero.
---@param ... integer
---@return boolean
function bit32.btest(...) end

---`x` shifted left by `disp` bits (negative `disp` shifts right).
---@param x integer
---@param disp integer
---@return integer
function bit32.lshift(x, disp) end

---`x` shifted right by `disp` bits, logically (negative `disp` shifts left).
---@param x integer
---@param disp integer
---@return integer
function bit32.rshift(x, disp) end

---`x` shifted right by `disp` bits, arithmetically (copies of the top bit fill in).
---@param x integer
---@param disp integer
---@return integer
function bit32.arshift(x, disp) end

---`x` rotated left by `disp` bits.
---@param x integer
---@param disp integer
---@return integer
function bit32.lrotate(x, disp) end

---`x` rotated right by `disp` bits.
---@param x integer
---@param disp integer
---@return integer
function bit32.rrotate(x, disp) end

---The unsigned number formed by bits `field` .. `field + width - 1` of `n` (bit 0 is the least significant).
---@param n integer
---@param field integer 0..31
---@param width? integer Default 1.
---@return integer
function bit32.extract(n, field, width) end

---A copy of `n` with bits `field` .. `field + width - 1` replaced by `v`.
---@param n integer
---@param v integer
---@param field integer 0..31
---@param width? integer Default 1.
---@return integer
function bit32.replace(n, v, field, width) end

return bit32
