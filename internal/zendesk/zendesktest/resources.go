package zendesktest

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"path"
	"slices"
	"strings"
)

const maxUploads = 1000

var validRoles = []string{"end-user", "agent", "admin"}

func (s *Server) userJSON(r *http.Request, u *User) User {
	c := *u
	c.URL = fmt.Sprintf("%s/api/v2/users/%d.json", baseURL(r), u.ID)
	return c
}

// createOrUpdateUser matches users by email: 201 when created, 200 when updated.
func (s *Server) createOrUpdateUser(w http.ResponseWriter, r *http.Request, body []byte) {
	var in struct {
		Name  string `json:"name"`
		Email string `json:"email"`
		Role  string `json:"role"`
	}
	if !decodeRoot(w, body, "user", &in) {
		return
	}
	v := verrs{}
	if !strings.Contains(in.Email, "@") {
		v.add("email", "Email: is invalid", "InvalidFormat")
	}
	if in.Role != "" && !slices.Contains(validRoles, in.Role) {
		v.add("role", "Role: is invalid", "InvalidValue")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	existing := s.userByEmailLocked(in.Email)
	if existing == nil && strings.TrimSpace(in.Name) == "" {
		v.add("name", "Name: is too short (minimum one character)", "TooShort")
	}
	if len(v) > 0 {
		v.write(w)
		return
	}
	if existing != nil {
		if in.Name != "" {
			existing.Name = in.Name
		}
		if in.Role != "" {
			existing.Role = in.Role
		}
		existing.UpdatedAt = s.now()
		writeJSON(w, http.StatusOK, map[string]any{"user": s.userJSON(r, existing)})
		return
	}
	u := s.upsertUserLocked(in.Name, in.Email, in.Role)
	writeJSON(w, http.StatusCreated, map[string]any{"user": s.userJSON(r, u)})
}

func (s *Server) showUser(w http.ResponseWriter, r *http.Request, id int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u, ok := s.users[id]
	if !ok {
		writeError(w, http.StatusNotFound, "RecordNotFound", "Not found")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"user": s.userJSON(r, u)})
}

func (s *Server) listGroups(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Group, 0, len(s.groupOrder))
	for _, id := range s.groupOrder {
		g := *s.groups[id]
		g.URL = fmt.Sprintf("%s/api/v2/groups/%d.json", baseURL(r), g.ID)
		out = append(out, g)
	}
	writeJSON(w, http.StatusOK, map[string]any{"groups": out, "next_page": nil, "previous_page": nil, "count": len(out)})
}

// createUpload stores a file (the raw request body) under a new token, valid for an hour.
func (s *Server) createUpload(w http.ResponseWriter, r *http.Request, body []byte) {
	name := r.URL.Query().Get("filename")
	if name == "" {
		writeError(w, http.StatusBadRequest, "ParameterMissing", "param is missing or the value is empty: filename")
		return
	}
	ct := mime.TypeByExtension(path.Ext(name))
	if ct == "" {
		ct = r.Header.Get("Content-Type")
	}
	if ct == "" {
		ct = "application/octet-stream"
	}
	ct, _, _ = strings.Cut(ct, ";")
	var tb [16]byte
	rand.Read(tb[:])
	token := hex.EncodeToString(tb[:])

	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.opts.Now()
	for tok, u := range s.uploads {
		if now.After(u.created.Add(uploadTTL)) {
			delete(s.uploads, tok)
		}
	}
	if len(s.uploads) >= maxUploads {
		writeError(w, http.StatusUnprocessableEntity, "TooManyUploads", "simulator upload limit reached")
		return
	}
	id := s.nextIDLocked()
	u := &upload{
		token: token,
		attachment: Attachment{
			ID:          id,
			FileName:    name,
			ContentURL:  fmt.Sprintf("%s/attachments/token/%s/?name=%s", baseURL(r), token, url.QueryEscape(name)),
			ContentType: ct,
			Size:        int64(len(body)),
		},
		created: now,
	}
	s.uploads[token] = u
	writeJSON(w, http.StatusCreated, map[string]any{"upload": map[string]any{
		"token":       token,
		"expires_at":  s.now().Add(uploadTTL),
		"attachment":  u.attachment,
		"attachments": []Attachment{u.attachment},
	}})
}
