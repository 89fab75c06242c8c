package mesostest

import (
	"crypto/subtle"
	"net/http"
)

// schedulerRealm is the authentication realm of the master's scheduler
// endpoint (the --http_framework_authenticators realm).
const schedulerRealm = "mesos-master-scheduler"

// authenticate checks HTTP basic credentials when credentials are
// configured. It returns the authenticated principal ("" when
// authentication is off) and false when the request must be refused with 401.
func (s *Server) authenticate(r *http.Request) (principal string, ok bool) {
	if len(s.opts.Credentials) == 0 {
		return "", true
	}
	user, pass, hasAuth := r.BasicAuth()
	if !hasAuth {
		return "", false
	}
	secret, known := s.opts.Credentials[user]
	if !known || subtle.ConstantTimeCompare([]byte(secret), []byte(pass)) != 1 {
		return "", false
	}
	return user, true
}

func writeUnauthorized(w http.ResponseWriter) {
	w.Header().Set("WWW-Authenticate", `Basic realm="`+schedulerRealm+`"`)
	http.Error(w, "", http.StatusUnauthorized)
}
